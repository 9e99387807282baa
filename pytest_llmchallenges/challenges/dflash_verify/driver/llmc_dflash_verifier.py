"""One verification cycle through the submission's verifier, or its generation loop where it has none.

The verifier is called with the grader's target model (llmc_dflash_target) in place of the submission's own,
its arguments bound by name (llmc_bind); a method is called on an instance of its class, a tree object built
from the submission's own tree class where the verifier takes one, and a model the verifier reads from its
module's globals swapped for the grader's while it runs. Which verifier drives the answer is decided by the
toolkit's probe rule (llmc_probe): a candidate the prompt names is driven as it is; others are probed with one
small cycle. Where no verifier works, a generation loop (``speculative_generate(prompt, model, draft, max)``)
is driven instead, with the draft model a callable that serves the grader's trees.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import bind, qualified_name
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess

    from .llmc_dflash_result import appended_tokens, read_result, token_list
    from .llmc_dflash_target import TargetAdapter
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import bind, qualified_name  # type: ignore[no-redef]
    from llmc_dflash_result import appended_tokens, read_result, token_list  # type: ignore[no-redef]
    from llmc_dflash_target import TargetAdapter  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]

# parameter names of the verifier, the generation loop and the classes they use, in the order they are tried
PARAMS = {
    "parents": r"parent",
    "children": r"child",
    "temperature": r"^temp|temperature",
    "draft": r"draft|propos|drafter|tree_fn|tree_source|speculator",
    "tokens": r"(tree|draft|cand|spec).*(tok|ids)|^(tokens|draft|candidates|nodes|tree)$",
    "prompt": r"prompt|prefix|context|generated|history|^(seq|sequence|input_ids|ids|tokens_so_far)$",
    "model": r"model|target|^lm$|llm|^net$|transformer|verifier_lm",
    "max": r"max|budget|limit|length|^n$|num|steps|new",
}
_TREE_PARAM = r"(draft_|spec_)?tree(_step)?|step|draft"
_PROBE = ([1, 2, 3], [4, 5], [-1, 0])  # prompt, tree tokens, parents: one small cycle to probe a candidate


def _bound(sub: Answer, fn: Any, model: Any) -> Any:
    """A method found on a class (``Verifier.verify_and_accept``) is called on an instance built with the model."""
    qual = getattr(fn, "__qualname__", "")
    try:
        first = next(iter(inspect.signature(fn).parameters), "")
    except (TypeError, ValueError):
        first = ""
    if "." not in qual or first != "self" or "<locals>" in qual:
        return fn
    owner = getattr(inspect.getmodule(fn), qual.split(".")[0], None)
    if owner is None:
        return fn
    with guess("its class built with the model"):
        instance = sub.invoke(bind(owner, {"model": model, "temperature": 0.0}, PARAMS, ["model"]))
    return getattr(instance, fn.__name__)


class _Globals:
    """Swap module-level models of the submission for the adapter while its verifier runs (when the verifier
    takes no model argument and uses a global one)."""

    def __init__(self, fn: Any, cls: type | None, model: Any) -> None:
        self.space = getattr(inspect.unwrap(fn), "__globals__", {})
        self.model = model
        self.swap = {
            key: value
            for key, value in self.space.items()
            if (cls is not None and isinstance(value, cls))
            or (
                re.search(PARAMS["model"], key.lower())
                and not (inspect.isclass(value) or inspect.ismodule(value) or inspect.isroutine(value))
                and any(callable(getattr(value, m, None)) for m in ("forward", "logits", "__call__"))
            )
        }

    def __enter__(self) -> None:
        for key in self.swap:
            self.space[key] = self.model

    def __exit__(self, *exc: object) -> None:
        self.space.update(self.swap)


class Verifier:
    """One verification cycle through the submission's verifier (or its generation loop)."""

    def __init__(self, sub: Answer, cfg: dict[str, Any]) -> None:
        self.sub = sub
        self.adapter = TargetAdapter(sub, cfg)
        self.verify = self._find_verifier()
        self.loop = None if self.verify is not None else self._find_loop()

    def _find_verifier(self) -> Any:
        try:
            found = self.sub.candidates("verify")
        except InterfaceError:
            return None
        found = [c for c in found if not re.search(r"mask|test", c.name.lower())]
        if not found:
            return None
        if found[0].score >= 80:  # the prompt's own name (or the manifest's): driven as declared, unprobed
            return found[0].load()
        attempts = [Attempt(str(c), c.load, c.documented) for c in found[:6]]
        try:
            fn, _ = first_working(
                attempts, lambda fn: self._cycle_with(fn, *_PROBE), lambda t: self.sub.interface_error("verify", t)
            )
        except InterfaceError:  # not driven: the generation loop is tried instead
            return None
        return fn

    def _find_loop(self) -> Any:
        try:
            found = self.sub.candidates("generate")
        except InterfaceError:
            found = []
        if not found:
            raise self.sub.interface_error(
                "verify", hint="no generation loop (speculative_generate) either; fix: [roles] verify = ..."
            )
        return found[0].load()

    def describe(self) -> str:
        how = (
            f"verifier {qualified_name(self.verify)}"
            if self.verify is not None
            else f"generation loop {qualified_name(self.loop)}"
        )
        return f"{how}; {self.adapter.describe()}"

    def _cycle_with(self, fn: Any, prompt: list[int], tokens: list[int], parents: list[int]) -> dict[str, Any]:
        model = self.adapter.model()
        kids = [[j for j, p in enumerate(parents) if p == i] for i in range(len(parents))]
        values: dict[str, Any] = {
            "prompt": list(prompt),
            "tokens": list(tokens),
            "parents": list(parents),
            "children": kids,
            "model": model,
            "temperature": 0.0,
        }
        fn = _bound(self.sub, fn, model)
        tree = _tree_object(self.sub, fn, values)
        if tree is not None:  # verify(prompt, tree, model): the submission's own tree class
            values["tokens"] = tree
            del values["parents"]
        binding = bind(fn, values, PARAMS, ["prompt", "tokens", "parents", "model", "temperature"])
        if any(v is model for v in [*binding.args, *binding.kwargs.values()]):
            out = self.sub.invoke(binding)
        else:
            with guess("the model swapped into its module's globals"), _Globals(fn, self.adapter.cls, model):
                out = self.sub.invoke(binding)
        accepted, new_token = read_result(out)
        return {
            "accepted": accepted,
            "new_token": new_token,
            "appended": appended_tokens(accepted, new_token, list(tokens), list(parents)),
        }

    def cycle(self, prompt: list[int], tokens: list[int], parents: list[int]) -> dict[str, Any]:
        """One verification cycle; ``passes`` is how many forward passes of the grader's model it ran."""
        before = self.adapter.state.passes
        if self.verify is not None:
            result = self._cycle_with(self.verify, prompt, tokens, parents)
        else:
            seq = self.run_loop(prompt, [{"tokens": tokens, "parents": parents}], 1)
            result = {"accepted": seq[len(prompt) :], "new_token": None, "appended": seq[len(prompt) :]}
        return {**result, "passes": self.adapter.state.passes - before}

    def run_loop(self, prompt: list[int], trees: list[dict[str, Any]], n_new: int) -> list[int]:
        """The submission's own generation loop, drafting from ``trees`` by how far it has got."""
        p = len(prompt)

        def draft(seq: Any = None, *_: Any, **__: Any) -> tuple[list[int], list[int]]:
            got = len(seq) - p if isinstance(seq, (list, tuple, np.ndarray)) else 0
            tree = trees[min(max(got, 0), len(trees) - 1)]
            return list(tree["tokens"]), list(tree["parents"])

        def any_method(self: Any, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return draft  # propose / draft / get_tree / generate_tree ...: whatever the loop calls

        drafter = type("GraderDraft", (), {"__call__": staticmethod(draft), "__getattr__": any_method})
        model = self.adapter.model()
        loop = _bound(self.sub, self.loop, model)
        try:
            names = list(inspect.signature(loop).parameters)
        except (TypeError, ValueError):
            names = []
        max_name = next((n for n in names if re.search(PARAMS["max"], n.lower())), "")
        limit = n_new if re.search(r"new|num|^n$|steps", max_name.lower()) else p + n_new
        values = {"prompt": list(prompt), "model": model, "draft": drafter(), "max": limit, "temperature": 0.0}
        out = self.sub.invoke(bind(loop, values, PARAMS, ["prompt", "model", "draft", "max", "temperature"]))
        if isinstance(out, tuple) and out and isinstance(out[0], (list, np.ndarray)):
            out = out[0]
        seq = token_list(out, "generated tokens")
        return seq if seq[:p] == list(prompt) else list(prompt) + seq


def _tree_object(sub: Answer, fn: Any, values: dict[str, Any]) -> Any:
    """The submission's tree class built from tokens/parents/children, when the verifier takes a tree object
    (a parameter named like ``tree`` and none for the parents); None otherwise."""
    try:
        names = [n.lower() for n in inspect.signature(fn).parameters]
    except (TypeError, ValueError):
        return None
    if any(re.search(PARAMS["parents"], n) for n in names) or not any(re.fullmatch(_TREE_PARAM, n) for n in names):
        return None
    space = getattr(inspect.unwrap(fn), "__globals__", {})
    for name, cls in space.items():
        if not (inspect.isclass(cls) and "tree" in name.lower()):
            continue
        try:
            params = [n.lower() for n in inspect.signature(cls).parameters]
        except (TypeError, ValueError):
            continue
        if any(re.search(PARAMS["parents"], n) for n in params):
            with guess("its tree class built from tokens and parents"):
                return sub.invoke(bind(cls, values, PARAMS, ["tokens", "parents", "children"]))
    return None
