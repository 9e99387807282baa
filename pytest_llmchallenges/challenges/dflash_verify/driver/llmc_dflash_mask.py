"""Attention masks as answers write them, read as booleans (True = may attend) with the form they came in.

One reading serves both places a mask appears: the output of the answer's ``build_tree_mask`` and the mask a
verifier passes to the grader's target model. The grader's model reads booleans, 0/1 and additive masks
(llmc_models.normalize_mask); here a boolean mask whose diagonal is all False is read as True = blocked, since
every position attends to itself."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_models import normalize_mask as model_mask
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_models import normalize_mask as model_mask  # type: ignore[no-redef]


def normalize_mask(mask: Any, length: int) -> np.ndarray:
    """A submission's mask as booleans (L, L) or (n, L, L), True = may attend.

    Booleans (inverted when the diagonal is all False: every position attends to itself), 0/1 numbers, or
    additive 0 / -inf (or a large negative); leading singleton axes are dropped.
    """
    try:
        allowed = model_mask(mask, length)
    except ValueError:
        allowed = None
    if allowed is None or allowed.ndim not in (2, 3):
        raise InterfaceError(f"a mask of shape {np.shape(mask)} for a sequence of length {length}")
    diagonal = np.diagonal(allowed, axis1=-2, axis2=-1)
    return ~allowed if not diagonal.any() else allowed


def read_mask(out: Any, size: int) -> tuple[np.ndarray, str]:
    """(mask, form) from what ``build_tree_mask`` returned for a sequence of ``size``: the boolean mask, or the
    array as float64 when it has another shape (the grader reports it); a tuple, list or dict yields the
    (size, size) item in it."""
    if isinstance(out, (tuple, list)) and not _looks_like_matrix(out, size):
        out = next((o for o in out if np.shape(o)[-2:] == (size, size)), out[0])
    if isinstance(out, dict):
        out = next((v for v in out.values() if np.shape(v)[-2:] == (size, size)), None)
    arr = Answer.array(out, "build_tree_mask output")
    if arr.ndim < 2 or arr.shape[-2:] != (size, size):
        return arr.astype(np.float64), f"shape {arr.shape}"
    form = "bool" if arr.dtype == bool else ("additive" if np.any(arr < 0) else "0/1")
    allowed = normalize_mask(arr, size)
    if arr.dtype == bool and not np.diagonal(arr, axis1=-2, axis2=-1).any():
        form = "bool, True = blocked"
    return allowed, form


def _looks_like_matrix(out: Any, size: int) -> bool:
    try:
        return np.asarray(out).shape[-2:] == (size, size)
    except (TypeError, ValueError):
        return False
