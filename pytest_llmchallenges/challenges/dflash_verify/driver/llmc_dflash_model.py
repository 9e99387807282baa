"""The submission's own model class and, when it can be built, an instance of it: the grader dresses its
target model as that class and asks the instance only for the form of its answers."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import bind
    from pytest_llmchallenges.child.llmc_models import MinimalLM
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import bind  # type: ignore[no-redef]
    from llmc_models import MinimalLM  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]


def their_model(sub: Answer, lm: MinimalLM) -> tuple[type | None, Any]:
    """The submission's model class and, when it can be built, an instance (used only to learn answer forms)."""
    try:
        found = sub.classes("model", skip=r"draft|mock|tree|test")
    except InterfaceError:
        return None, None
    return (found[0], _instantiate(sub, found[0], lm)) if found else (None, None)


# constructor parameters of the submission's model class, by name (first match wins): the grader's sizes
_SIZES = {
    "vocab": r"vocab",
    "dim": r"^(d|d_?model|dim|hidden(_size|_dim)?|n_?embd|embed(_dim|ding_dim)?|emb_dim)$",
    "heads": r"head",
    "seed": r"seed",
    "layers": r"layer",
    "context": r"max|ctx|context|seq|block|len|position",
    "ff": r"ff|mlp|inner",
    "rng": r"^(rng|random_state|generator)$",
}


def _instantiate(sub: Answer, cls: type, lm: MinimalLM) -> Any:
    """An instance of the submission's model class, built with the grader's sizes or with no arguments; None
    when neither works. Both are the grader's guesses (llmc_probe rule 3): a failure only means no example."""
    values = {
        "vocab": lm.vocab_size,
        "dim": lm.d_model,
        "heads": lm.n_heads,
        "seed": 0,
        "layers": 1,
        "context": 512,
        "ff": 4 * lm.d_model,
        "rng": np.random.default_rng(0),
    }

    def build(sized: bool) -> Any:
        with guess("the model class built only to learn the form of its answers"):
            if sized:
                return sub.invoke(bind(cls, values, _SIZES, [], reusable=tuple(values)))
            return sub.call(cls)

    attempts = [Attempt("sizes by name", lambda: build(True)), Attempt("no arguments", lambda: build(False))]
    try:
        return first_working(attempts, lambda obj: obj, lambda tried: InterfaceError("; ".join(tried)))[0]
    except InterfaceError:
        return None
