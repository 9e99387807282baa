"""Driver for dflash_verify (tree-attention verification for speculative decoding): the entry points.

The submission verifies draft trees against the *grader's* target model (llmc_models.MinimalLM, which is
tree-consistent), never against its own: only then is "equal to greedy decoding" a property of the verifier
alone. The pieces, one job each:

- llmc_dflash_target: the grader's model dressed as the submission's own model class, answering its calls;
  llmc_dflash_model finds that class and an example instance, llmc_dflash_calls reads each call (ids, mask,
  positions), llmc_dflash_forms lays the answer out like the example's, llmc_dflash_tags makes the tag
  vectors it hands out as embeddings and hidden states;
- llmc_dflash_verifier: finding the verifier (or the generation loop) and running one cycle through it;
- llmc_dflash_result: what a cycle returned and what it appended, read by the tree's structure (no oracle);
- llmc_dflash_mask: masks as booleans, from whatever form the answer writes them in;
- llmc_dflash_values: plain values (ints, token ids, parameter names).
"""

from __future__ import annotations

import re
from typing import Any

try:
    from pytest_llmchallenges.child.llmc_api import Answer, Role
    from pytest_llmchallenges.child.llmc_bind import Binding, bind, parameters
    from pytest_llmchallenges.child.llmc_entry import entry

    from .llmc_dflash_mask import read_mask
    from .llmc_dflash_values import param_names
    from .llmc_dflash_verifier import Verifier
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, Role  # type: ignore[no-redef]
    from llmc_bind import Binding, bind, parameters  # type: ignore[no-redef]
    from llmc_dflash_mask import read_mask  # type: ignore[no-redef]
    from llmc_dflash_values import param_names  # type: ignore[no-redef]
    from llmc_dflash_verifier import Verifier  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]

ROLES = {
    "mask": Role(
        prescribed=["build_tree_mask"],
        patterns=[r"tree.*mask", r"mask.*tree", r"build.*mask", r"(attn|attention).*mask"],
        kind="function",
        min_params=2,
        description="build_tree_mask(prompt_len, tree_parents) -> (P+N, P+N) mask",
    ),
    "verify": Role(
        prescribed=["verify_and_accept"],
        patterns=[r"verify.*accept", r"accept.*verif", r"verif.*tree", r"tree.*verif", r"^verify", r"verif"],
        kind="function",
        min_params=3,
        description="verify_and_accept(prompt_tokens, tree_tokens, tree_parents, target_model, temperature)",
    ),
    "generate": Role(
        prescribed=["speculative_generate", "speculative_decode", "speculative_decoding", "generate_speculative"],
        patterns=[r"specul.*(gen|decod)", r"(gen|decod).*specul", r"dflash.*(gen|decod)", r"tree.*(gen|decod)"],
        kind="function",
        min_params=2,
        description="a speculative generation loop (prompt, target_model, draft_model, max_tokens)",
    ),
    "model": Role(
        prescribed=["MinimalLM"],
        patterns=[r"minimal.*(lm|model|transformer)", r"target", r"(lm|model|transformer|gpt|llm)$"],
        kind="class",
        description="the target model class (MinimalLM)",
    ),
}


# build_tree_mask's parameters, by name; those the names do not tell take the prompt first, then the parents
_MASK_PARAMS = {"parents": r"parent", "prompt": r"prompt|prefix|context|^p$"}


@entry
def tree_masks(sub: Answer, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """For each case {prompt_len, parents}: the submission's mask as booleans (True = may attend)."""
    fn = sub.role("mask")
    names = param_names(fn, 2)
    masks, forms = [], []
    for case in cases:
        p, parents = int(case["prompt_len"]), [int(x) for x in case["parents"]]
        prompt_arg: Any = p
        if names and re.search(r"token|^prompt$|^seq|context|ids", names[0].lower()):
            prompt_arg = list(range(1, p + 1))  # the function wants the prompt tokens themselves
        values = {"prompt": prompt_arg, "parents": parents}
        if parameters(fn):
            binding = bind(fn, values, _MASK_PARAMS, ["prompt", "parents"])
        else:  # no signature to bind to (*args): the prompt's order
            binding = Binding(fn, (prompt_arg, parents))
        mask, form = read_mask(sub.invoke(binding), p + len(parents))
        masks.append(mask)
        forms.append(form)
    return {"masks": masks, "forms": forms}


@entry
def verify_cycles(sub: Answer, model_cfg: dict[str, Any], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """One verification cycle per case {prompt, tokens, parents}: {accepted, new_token, appended} each."""
    verifier = Verifier(sub, model_cfg)
    out = []
    for case in cases:
        out.append(
            verifier.cycle([int(t) for t in case["prompt"]], [int(t) for t in case["tokens"]], list(case["parents"]))
        )
    return {"how": verifier.describe(), "cycles": out}


@entry
def speculative_runs(sub: Answer, model_cfg: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Chained cycles per run {prompt, trees, n_new, max_cycles}: the tree for a cycle is trees[len(seq) - P].

    Runs until n_new tokens are generated or max_cycles cycles ran, or a cycle appended nothing. The sequence
    and each cycle's raw result come back; judging is the grader's. A submission with a generation loop but no
    verifier runs its loop whole (or, when max_cycles is set, one single-cycle loop call per cycle).
    """
    verifier = Verifier(sub, model_cfg)
    results = []
    for run in runs:
        prompt = [int(t) for t in run["prompt"]]
        trees, n_new, max_cycles = run["trees"], int(run["n_new"]), run.get("max_cycles")
        if verifier.verify is None and max_cycles is None:  # the submission's own loop, start to end
            seq = verifier.run_loop(prompt, trees, n_new)
            results.append({"sequence": seq, "cycles": [], "stopped": "generation loop"})
            continue
        seq, stopped = list(prompt), ""
        cycles: list[dict[str, Any]] = []
        while len(seq) - len(prompt) < n_new and (max_cycles is None or len(cycles) < max_cycles):
            tree = trees[min(len(seq) - len(prompt), len(trees) - 1)]
            result = verifier.cycle(seq, [int(t) for t in tree["tokens"]], list(tree["parents"]))
            cycles.append(result)
            if not result["appended"]:
                stopped = f"cycle {len(cycles)} appended nothing"
                break
            seq += result["appended"]
        results.append({"sequence": seq, "cycles": cycles, "stopped": stopped})
    return {"how": verifier.describe(), "runs": results}
