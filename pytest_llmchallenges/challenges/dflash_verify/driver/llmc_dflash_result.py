"""Reading what one verification cycle returned, and what it appended, by the tree's structure alone (no oracle)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError

    from .llmc_dflash_values import is_int
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_dflash_values import is_int  # type: ignore[no-redef]


def _int_or_none(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)) and np.size(v) == 1:
        v = np.asarray(v).reshape(-1)[0]
    if isinstance(v, (np.ndarray,)) and v.ndim == 0:
        v = v.item()
    if is_int(v) or (isinstance(v, np.generic) and np.issubdtype(type(v), np.integer)):
        return None if int(v) < 0 else int(v)
    raise InterfaceError(f"new_token is {type(v).__name__} {v!r}, expected an int or None")


def token_list(v: Any, what: str) -> list[int]:
    """Token ids as ints from any array-like; whole floats pass, other dtypes are an interface problem."""
    arr = Answer.array(v, what).reshape(-1)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InterfaceError(f"{what}: expected token ids, got {arr.dtype}")
    return [int(t) for t in arr]


def read_result(out: Any) -> tuple[list[int], int | None]:
    """(accepted_tokens, new_token) from a tuple, a dict, an object, or a bare list of tokens."""
    if isinstance(out, dict) or (hasattr(out, "__dict__") and not isinstance(out, (list, tuple, np.ndarray))):
        d = out if isinstance(out, dict) else vars(out)
        keys = {str(k).lower(): k for k in d}
        acc = next((keys[k] for k in keys if re.search(r"accept|tokens|output|path", k)), None)
        new = next((keys[k] for k in keys if re.search(r"new|bonus|correct|next|replace|extra|last", k)), None)
        if acc is None:
            raise InterfaceError(f"verifier returned a dict/object with keys {sorted(keys)}: no accepted tokens")
        return token_list(d[acc], "accepted_tokens"), _int_or_none(d[new]) if new is not None else None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], (list, tuple, np.ndarray)):
        rest = [x for x in out[1:] if x is None or is_int(x) or isinstance(x, (np.ndarray, list, tuple))]
        return token_list(out[0], "accepted_tokens"), _int_or_none(rest[0]) if rest else None
    if (
        isinstance(out, (tuple, list))
        and len(out) == 2
        and (out[0] is None or is_int(out[0]))
        and isinstance(out[1], (list, tuple, np.ndarray))
    ):  # (new_token, accepted)
        return token_list(out[1], "accepted_tokens"), _int_or_none(out[0])
    return token_list(out, "accepted tokens"), None


def appended_tokens(accepted: list[int], new_token: int | None, tokens: list[int], parents: list[int]) -> list[int]:
    """The tokens one cycle adds to the sequence, read from (accepted, new_token) by the tree's structure.

    Conventions seen: ``accepted`` = the drafted path and ``new_token`` the correction/bonus (the prompt's);
    or ``accepted`` already ending with the correction (``new_token`` repeating it, or None). Walking the tree
    from the roots along ``accepted`` tells them apart: a last element that is no child of the path before it
    is the correction itself. A correct verifier never leaves a child token unaccepted that matches the
    correction, so this reading cannot turn a right answer wrong.
    """
    kids: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        kids.setdefault(p, []).append(i)
    frontier, on_path = kids.get(-1, []), 0
    for t in accepted:
        nxt = [i for i in frontier if tokens[i] == t]
        if not nxt:
            break
        on_path += 1
        frontier = [c for i in nxt for c in kids.get(i, [])]
    if accepted and on_path == len(accepted) - 1 and new_token in (None, accepted[-1]):
        return list(accepted)
    return list(accepted) + ([new_token] if new_token is not None else [])
