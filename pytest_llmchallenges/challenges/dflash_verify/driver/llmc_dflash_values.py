"""Plain values the dflash driver reads from answers and their calls: ints, token ids, parameter names.

Shared by the target-model adapter (which reads a verifier's calls on the model) and the entry points."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np


def as_ids(value: Any) -> np.ndarray | None:
    """Token ids (int64) from a non-empty list of ints or an integer array of 1 or 2 axes; None otherwise."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, np.integer)) for v in value):
        if any(isinstance(v, bool) for v in value):
            return None
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim in (1, 2) and value.size:
        return value.astype(np.int64)
    return None


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def param_names(fn: Any, n: int) -> list[str]:
    """The names of ``fn``'s first ``n`` positional parameters (self left out), ``argK`` where it has fewer."""
    try:
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if params and params[0] == "self":
        params = params[1:]
    return (params + [f"arg{i}" for i in range(len(params), n)])[:n]
