"""Grading tests for the dflash_verify prompt: tree-attention verification for speculative decoding.

The grading criterion is the prompt's golden test: at temperature 0, speculative decoding with the
submission's verifier must reproduce the target model's autoregressive greedy output exactly. The target is
the grader's own MinimalLM (``target_lm``): tree-consistent (its position embedding takes explicit position
ids where a verifier passes them, and otherwise each token's autoregressive position read from the mask, so
the logits at a tree node equal the autoregressive logits of prompt + path) and with a weak residual, so that
predictions depend on the context and a verifier that reads the wrong position is exposed. The driver
passes it in dressed as the submission's own model class (same method names, same answer shapes), and the
expected outputs are computed here by plain autoregressive decoding, with no tree mask at all
(oracle.py).

Where the prompt misleads:

- Step 4b, "Get the target model's logits at position P+i", is off by one: the logits at a position predict
  the *next* token, so node i must be checked against the prediction at its **parent's** position (P-1 for a
  root). The logits at P+i already include node i and predict its children (test_basic_roots_match_greedy).
- The literal accept loop of step 4 ("for each node in order: accept if it matches, else take the prediction
  and stop") is not greedy-equivalent on branching trees: after accepting a node it checks the node's sibling
  against the same prediction, rejects it and emits that prediction again, duplicating a token
  (test_sibling_after_accepted_node). Greedy acceptance is a walk down the tree: a node counts only when it
  and all its ancestors match.
- How far that walk goes is the prompt's choice: its loop STOPs at the first rejection, so a verifier that
  does so passes, and one that keeps the longest matching path does better on the efficiency axis (tokens
  per target pass), which is reported, not graded. The floor is what the prompt's loop accepts
  (test_accepts_what_the_prompt_loop_accepts).
- The section 5 loop hands ``accept_reject`` the logits at tree positions only, which cannot check a root
  (its prediction sits at the last *prompt* position); answers are graded on the golden property, not on that
  pseudo-code.

Conventions accepted: ``(accepted_tokens, new_token)`` with the correction (or bonus) separate, or folded
into ``accepted_tokens``; after a path that ends at a leaf, the bonus token is optional (the prompt is silent),
after a rejection the target's prediction is required (step 4d says so). Masks: boolean or additive.
Position ids, passed to the model call or at embedding time, are honoured: they must be the autoregressive
ones (prompt length - 1 + depth for a tree node), as a real target model with absolute positions needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges.challenges.dflash_verify import oracle as oracle
from pytest_llmchallenges.challenges.dflash_verify.driver import llmc_drive_dflash_verify as driver
from pytest_llmchallenges.child.llmc_models import MinimalLM
from pytest_llmchallenges.child.llmc_scan import scan_folder
from pytest_llmchallenges.grading import wrong

CHALLENGE = "dflash_verify"

TARGET: dict[str, Any] = {"vocab_size": 1000, "d_model": 64, "n_heads": 4, "seed": 0, "position_scale": 1.0}
PROMPT = [10, 20, 30]  # the prompt's Test 1
FRAMEWORKS = {"torch", "jax", "jaxlib", "flax", "tensorflow", "keras", "mlx", "cupy", "autograd", "tinygrad"}


@pytest.fixture(scope="module")
def target_lm() -> MinimalLM:
    """The grader's target: 1 layer, d_model 64, vocab 1000, fixed seed, tree-consistent (see module doc)."""
    return MinimalLM(**TARGET)


Case = tuple[str, list[int], list[int], list[int]]  # label, prompt, tree tokens, tree parents


def _greedy(lm: MinimalLM, prompt: Sequence[int], n: int) -> list[int]:
    return lm.greedy(list(prompt), n)


def _next(lm: MinimalLM, seq: Sequence[int]) -> int:
    return int(np.argmax(lm.logits(list(seq))[-1]))


def _prompts(
    rng: np.random.Generator, lm: MinimalLM, count: int, n_check: int = 5
) -> list[tuple[list[int], list[int]]]:
    """The prompt's [10, 20, 30] and ``count - 1`` random prompts, each with a distinct greedy continuation."""
    g = _greedy(lm, PROMPT, n_check)
    assert len(set(g)) == n_check and not set(g) & set(PROMPT), "the target model's greedy run of [10, 20, 30]"
    out = [(list(PROMPT), g)]
    for k in range(count - 1):
        out.append(oracle.distinct_greedy_prompt(rng, lambda p, n: _greedy(lm, p, n), 1 + k % 7, n_check))
    return out


def _wrong_token(rng: np.random.Generator, avoid: Sequence[int]) -> int:
    while True:
        t = int(rng.integers(1000))
        if t not in avoid:
            return t


def _run_cycles(sandbox, cases: list[Case]) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    payload = [{"prompt": p, "tokens": t, "parents": par} for _, p, t, par in cases]
    out = sandbox.run(driver.verify_cycles, TARGET, payload).value
    return out["how"], out["cycles"]


def _floor(g: list[int], tokens: list[int], parents: list[int]) -> int:
    """How many tokens the prompt's accept loop appends at least: its path, and the correction after it."""
    path, correction = oracle.prompt_loop_floor(g, tokens, parents)
    return max(1, len(path) + correction)


def _check_cycles(sandbox, lm: MinimalLM, cases: list[Case], floor: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Run every case as one verification cycle; fail listing the cases whose output is wrong (``floor``:
    also those that append less than the prompt's accept loop would)."""
    how, results = _run_cycles(sandbox, cases)
    failures = []
    for (label, prompt, tokens, parents), got in zip(cases, results, strict=True):
        g = _greedy(lm, prompt, max(oracle.depths(parents), default=0) + 1)
        answer = oracle.cycle_answer(g, tokens, parents)
        problem = oracle.judge_cycle(answer, got["appended"], _floor(g, tokens, parents) if floor else 1)
        if problem:
            failures.append(
                f"{label}: {problem}; prompt {prompt}, tree tokens {tokens}, parents {parents}, returned "
                f"accepted={got['accepted']}, new_token={got['new_token']}"
            )
    if failures:
        wrong(f"{len(failures)} of {len(cases)} cycles wrong ({how}): " + " | ".join(failures[:4]))


def test_tree_mask_matches_rules(sandbox, rng):
    """build_tree_mask(P, parents) against rules a) to e) entry by entry, boolean or additive form: causal
    prompt rows, tree rows seeing the whole prompt, themselves and all their ancestors (transitively), and no
    sibling, cousin or other branch. Fixed trees (chains, stars, two branches, depth-first and breadth-first
    numbering) and random trees in random topological orders."""
    fixed = [
        (3, [-1, -1, -1]),
        (1, [-1, 0, 1, 2, 3]),
        (4, [-1, -1, 0, 0, 1, 1]),
        (2, [-1, 0, 1, -1, 3, 0]),
        (5, [-1, 0, 0, 2, 2, 4, -1, 6]),
    ]
    random_trees = []
    for _ in range(6):
        n = int(rng.integers(4, 13))
        parents = [-1] + [int(rng.integers(-1, i)) for i in range(1, n)]
        random_trees.append((int(rng.integers(1, 8)), oracle.random_topological_order(parents, rng)[1]))
    cases = fixed + random_trees
    out = sandbox.run(driver.tree_masks, [{"prompt_len": p, "parents": par} for p, par in cases]).value
    for (p, parents), got, form in zip(cases, out["masks"], out["forms"], strict=True):
        expected = oracle.tree_mask(p, parents)
        got = np.asarray(got)
        if got.shape != expected.shape:
            wrong(f"P={p}, parents {parents}: mask shape {got.shape}, expected {expected.shape} ({form})")
        bad = np.argwhere(got != expected)
        if len(bad):
            i, j = (int(x) for x in bad[0])
            wrong(
                f"P={p}, parents {parents} ({form} mask): {len(bad)} wrong entries, first M[{i}, {j}] = "
                f"{bool(got[i, j])}, expected {bool(expected[i, j])}"
            )


def test_basic_roots_match_greedy(sandbox, rng, target_lm):
    """The prompt's Test 1: prompt [10, 20, 30] (and random prompts), three roots, no depth 2, with the right
    root first, in the middle, last, or absent; one cycle must append exactly greedy decoding's next tokens.

    "First root correct" is where the prompt's step 4b misleads: checking node i against the logits at its
    own position P+i rejects the right root (those logits predict the token after it) and emits the wrong
    token. Wrong roots include the right token at the wrong depth (greedy's second token)."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w1, w2 = g[1], _wrong_token(rng, g[:3])
        w3 = _wrong_token(rng, [*g[:3], w2])
        cases += [
            ("first root correct", prompt, [g[0], w1, w2], [-1, -1, -1]),
            ("middle root correct", prompt, [w1, g[0], w2], [-1, -1, -1]),
            ("last root correct", prompt, [w2, w1, g[0]], [-1, -1, -1]),
            ("no root correct", prompt, [w1, w2, w3], [-1, -1, -1]),
        ]
    _check_cycles(sandbox, target_lm, cases)


def test_subtree_invalidation(sandbox, rng, target_lm):
    """The prompt's Test 2: a rejected node whose children are exactly what the target predicts *after it*
    (so each would match if checked on its own); they must be skipped. At depth 1 with and without a right
    root elsewhere, and at depth 2 under an accepted root."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w = _wrong_token(rng, g[:3])
        c1 = _next(target_lm, [*prompt, w])
        c2 = _next(target_lm, [*prompt, w, c1])
        w2 = _wrong_token(rng, g[:3])
        d3 = _next(target_lm, [*prompt, g[0], w2])
        cases += [
            ("rejected root, its children match alone", prompt, [w, c1, c2], [-1, 0, 1]),
            ("rejected root with matching children, then the right root", prompt, [w, c1, g[0], c2], [-1, 0, -1, 1]),
            ("rejected depth-2 node, its child matches alone", prompt, [g[0], w2, d3], [-1, 0, 1]),
        ]
    _check_cycles(sandbox, target_lm, cases)


def _trees_for_offsets(
    rng: np.random.Generator, continuation: list[int], offsets: int, n_nodes: tuple[int, int], depth: tuple[int, int]
) -> list[dict]:
    """One random draft tree per position the generation can have reached, built from the true continuation."""
    trees = []
    for t in range(offsets):
        max_depth = int(rng.integers(depth[0], depth[1] + 1))
        n = int(rng.integers(n_nodes[0], n_nodes[1] + 1))
        tokens, parents = oracle.draft_tree(rng, continuation[t : t + max_depth + 1], n, max_depth)
        trees.append({"tokens": tokens, "parents": parents})
    return trees


def _designed_trees(continuation: list[int], offsets: int, rng: np.random.Generator) -> list[dict]:
    """Test 3's trees: the right token at the wrong depth as the first root, the right root second with two
    equal right children, one of which has a wrong child."""
    trees = []
    for t in range(offsets):
        c = continuation[t : t + 3]
        bad = _wrong_token(rng, c)
        trees.append(
            {"tokens": [c[1], c[0], bad, c[1], c[1], _wrong_token(rng, [*c, bad])], "parents": [-1, -1, 0, 1, 1, 4]}
        )
    return trees


def _check_runs(sandbox, lm: MinimalLM, runs: list[dict], cycles_required: int | None = None) -> None:  # type: ignore[no-untyped-def]
    out = sandbox.run(driver.speculative_runs, TARGET, runs).value
    for run, got in zip(runs, out["runs"], strict=True):
        prompt, n_new = run["prompt"], run["n_new"]
        seq = [int(t) for t in got["sequence"]]
        new = seq[len(prompt) :]
        expected = _greedy(lm, prompt, max(len(new), n_new))
        if seq[: len(prompt)] != prompt:
            wrong(f"prompt {prompt}: the generated sequence does not start with the prompt: {seq[:12]}")
        if new != expected[: len(new)]:
            first = next(k for k, (a, b) in enumerate(zip(new, expected, strict=False)) if a != b)
            cycle, done = 0, 0
            for cycle, c in enumerate(got["cycles"], 1):  # noqa: B007
                done += len(c["appended"])
                if done > first:
                    break
            detail = f" in cycle {cycle} ({got['cycles'][cycle - 1]})" if got["cycles"] else ""
            wrong(
                f"prompt {prompt}: speculative decoding gave {new[: first + 3]}..., greedy decoding "
                f"{expected[: first + 3]}...: first difference at new token {first}{detail} ({out['how']})"
            )
        if cycles_required is not None:
            if len(got["cycles"]) != cycles_required or len(new) < cycles_required:
                wrong(f"prompt {prompt}: {len(got['cycles'])} cycles appending {new}, expected {cycles_required}")
        elif len(new) < n_new:
            wrong(f"prompt {prompt}: generation stopped after {len(new)} of {n_new} tokens ({got['stopped']})")


def test_multi_step_matches_greedy(sandbox, rng, target_lm):
    """The prompt's Test 3: three consecutive cycles, the output of cycle n being the prompt of cycle n+1; the
    whole sequence equals greedy decoding. The draft for each cycle is built from the sequence that cycle
    starts from, so a cycle that went wrong is not rescued by the next draft."""
    runs = []
    for k, (prompt, _) in enumerate(_prompts(rng, target_lm, 3)):
        continuation = _greedy(target_lm, prompt, 40)
        trees = (
            _designed_trees(continuation, 30, rng)
            if k == 0
            else _trees_for_offsets(rng, continuation, 30, (4, 9), (2, 4))
        )
        runs.append({"prompt": prompt, "trees": trees, "n_new": 30, "max_cycles": 3})
    _check_runs(sandbox, target_lm, runs, cycles_required=3)


def test_golden_random_trees(sandbox, rng, target_lm):
    """THE GOLDEN TEST: full speculative generation (24 new tokens) on random prompts with random branching
    trees in random topological orders, drafted from the true greedy continuation with errors: wrong tokens,
    the right token at the wrong depth, duplicated right siblings, correct-looking tokens under wrong nodes.
    Every run must equal greedy decoding token for token."""
    runs = []
    for prompt, _ in _prompts(rng, target_lm, 8, n_check=3):
        continuation = _greedy(target_lm, prompt, 40)
        runs.append(
            {"prompt": prompt, "trees": _trees_for_offsets(rng, continuation, 24, (3, 14), (1, 5)), "n_new": 24}
        )
    _check_runs(sandbox, target_lm, runs)


def test_sibling_after_accepted_node(sandbox, rng, target_lm):
    """A node that follows an accepted sibling (or an accepted branch) in index order: the literal accept loop
    checks it against the same prediction, rejects it and emits that prediction a second time. Wrong and
    duplicated right siblings, at depth 1 and 2, in breadth-first and depth-first numbering."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w = _wrong_token(rng, g[:4])
        cases += [
            ("right root, then a wrong sibling", prompt, [g[0], w], [-1, -1]),
            ("two equal right roots", prompt, [g[0], g[0]], [-1, -1]),
            ("right child, then a wrong sibling", prompt, [g[0], g[1], w], [-1, 0, 0]),
            ("wrong child, then the right sibling", prompt, [g[0], w, g[1]], [-1, 0, 0]),
            ("accepted branch, then a wrong root", prompt, [g[0], g[1], w], [-1, 0, -1]),
            ("accepted branch, then a duplicate right root", prompt, [g[0], g[1], g[0], w], [-1, 0, -1, 2]),
        ]
    _check_cycles(sandbox, target_lm, cases)


def test_two_roots_with_children(sandbox, rng, target_lm):
    """Two roots with subtrees of their own, the right one first or second, numbered breadth-first and
    depth-first; the wrong root's children carry the right next token."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w, x = _wrong_token(rng, g[:4]), _wrong_token(rng, g[:4])
        cases += [
            ("right root first, breadth-first", prompt, [g[0], w, g[1], x, g[1], g[2]], [-1, -1, 0, 0, 1, 2]),
            ("right root second, breadth-first", prompt, [w, g[0], g[1], x, g[1], g[2]], [-1, -1, 0, 1, 1, 4]),
            ("right root second, depth-first", prompt, [w, g[1], g[2], g[0], x, g[1], g[2]], [-1, 0, 1, -1, 3, 3, 5]),
        ]
    _check_cycles(sandbox, target_lm, cases)


def test_wrong_root_with_correct_looking_children(sandbox, rng, target_lm):
    """A wrong root whose descendants are greedy decoding's next tokens (as if the root had been right): they
    must be rejected with it, alone or next to the right root."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w = _wrong_token(rng, g[:4])
        cases += [
            ("wrong root, correct-looking chain", prompt, [w, g[1], g[2]], [-1, 0, 1]),
            ("wrong root, correct-looking chain, right root", prompt, [w, g[1], g[2], g[0]], [-1, 0, 1, -1]),
            ("right root leaf first, then the wrong root's chain", prompt, [g[0], w, g[1], g[2]], [-1, -1, 1, 2]),
        ]
    _check_cycles(sandbox, target_lm, cases)


def test_accepts_what_the_prompt_loop_accepts(sandbox, rng, target_lm):
    """A cycle keeps at least what the prompt's accept loop keeps, and all of it greedy decoding's: the path
    it builds node by node in index order up to its first rejection, then the correction when the rejected
    node was the next candidate (4d). Stopping there follows the prompt and passes; accepting a longer path
    (the longest matching one) is efficiency, not correctness. The loop is read greedy-consistently where it
    misleads (see the module doc): a node is checked against its parent's prediction, and a sibling of an
    accepted node never re-emits a token (oracle.py: prompt_loop_floor). Fails verifiers that waste
    what the prompt accepts: keeping the last accepted node in index order instead of the path, ignoring the
    draft."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 3):
        w = _wrong_token(rng, g[:5])
        cases += [
            ("deep chain, all right", prompt, [g[0], g[1], g[2], g[3]], [-1, 0, 1, 2]),
            ("right chain, then a wrong child at its end", prompt, [g[0], g[1], w], [-1, 0, 1]),
            ("deep path, then a shallow duplicate", prompt, [g[0], g[1], g[2], g[0]], [-1, 0, 1, -1]),
            (
                "right chain numbered depth-first, wrong siblings after it",
                prompt,
                [g[0], g[1], g[2], w, w],
                [-1, 0, 1, 0, -1],
            ),
        ]
    _check_cycles(sandbox, target_lm, cases, floor=True)


def test_one_target_pass_per_cycle(sandbox, rng, target_lm):
    """ "Run ONE forward pass through the target model": each verification cycle calls the grader's target
    model once, whatever the tree (the counter sits in the grader's model, which the answer only calls). A
    batch of rows in one call is one pass; a call answered from hidden states the model returned earlier is
    none. Every tree starts with a right root, so even a verifier that STOPs at the first rejection accepts a
    drafted token and the prompt's own fallback pass (section 5: nothing accepted) never applies."""
    cases: list[Case] = []
    for prompt, g in _prompts(rng, target_lm, 2):
        w = _wrong_token(rng, g[:4])
        cases += [
            ("three roots", prompt, [g[0], w, g[1]], [-1, -1, -1]),
            ("a chain", prompt, [g[0], g[1], g[2], w], [-1, 0, 1, 2]),
            ("two branches", prompt, [g[0], w, g[1], w, g[2]], [-1, -1, 0, 1, 2]),
        ]
    how, results = _run_cycles(sandbox, cases)
    over = [f"{label}: {got['passes']}" for (label, *_), got in zip(cases, results, strict=True) if got["passes"] > 1]
    if over:
        wrong(
            f"{len(over)} of {len(cases)} cycles ran more than one forward pass of the target model ({how}); "
            "passes per cycle: " + ", ".join(over)
        )


def test_numpy_only(sandbox, submission, target_lm):
    """ "Use only NumPy": no torch, jax, tensorflow, mlx or cupy in any file (even guarded) or at run time."""
    found = {f: m & FRAMEWORKS for f, m in scan_folder(submission.challenge_dir(CHALLENGE)).imports.items()}
    found = {f: m for f, m in found.items() if m}
    if found:
        wrong("framework imported: " + "; ".join(f"{f}: {', '.join(sorted(m))}" for f, m in found.items()))
    result = sandbox.run(driver.verify_cycles, TARGET, [{"prompt": PROMPT, "tokens": [1, 2], "parents": [-1, 0]}])
    loaded = sorted(set(result.imports) & FRAMEWORKS)
    if loaded:
        wrong(f"framework imported at run time: {', '.join(loaded)}")
