"""Reading a verifier's call on the target model: the token ids (passed, or traced back through tag rows), the
mask, and the position ids, whatever the names and order of its arguments."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import InterfaceError

    from .llmc_dflash_mask import normalize_mask
    from .llmc_dflash_tags import Tags
    from .llmc_dflash_values import as_ids, is_int, param_names
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import InterfaceError  # type: ignore[no-redef]
    from llmc_dflash_mask import normalize_mask  # type: ignore[no-redef]
    from llmc_dflash_tags import Tags  # type: ignore[no-redef]
    from llmc_dflash_values import as_ids, is_int, param_names  # type: ignore[no-redef]

_POSITIONS = re.compile(r"pos|depth")
_POSITION_IDS = re.compile(r"pos")


class Parsed:
    """What a call on the model was about: token ids (given, or read from tag rows), the mask, the position
    ids the caller passed (None: none), and the logits already attached to hidden-state rows; ``slot`` is
    where the ids were (None: from rows)."""

    def __init__(
        self,
        ids: np.ndarray,
        mask: np.ndarray | None,
        known_logits: np.ndarray | None,
        slot: int | str | None,
        positions: np.ndarray | None = None,
    ) -> None:
        self.ids, self.mask, self.known_logits, self.slot = ids, mask, known_logits, slot
        self.positions = positions
        self.computed: np.ndarray | None = None  # the grader's logits, once computed for this call


def position_ids(value: Any, ids: np.ndarray) -> np.ndarray | None:
    """Position ids a caller passed, as an array broadcastable to ``ids``: an array of ints, or a start offset.

    The grader's model honours them (it has a position embedding), so wrong positions give wrong logits.
    """
    if value is None:
        return None
    if is_int(value) or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"):
        return int(value) + np.arange(ids.shape[-1])  # a start offset (start_pos=P)
    pos = np.asarray(value)
    if pos.dtype.kind not in "iu" and not (pos.dtype.kind == "f" and np.all(pos == np.round(pos))):
        raise InterfaceError(f"position ids of dtype {pos.dtype}: expected integers")
    pos = pos.astype(np.int64)
    while pos.ndim > ids.ndim and pos.shape[0] == 1:
        pos = pos[0]
    if pos.shape[-1] != ids.shape[-1]:
        raise InterfaceError(f"position ids of shape {pos.shape} for {ids.shape[-1]} tokens")
    if ids.ndim == 1 and pos.ndim == 2 and pos.shape[0] == 1:
        pos = pos[0]
    return pos


def is_float_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f"


def parse_call(fn: Any, args: tuple, kwargs: dict, tags: Tags, dim: int) -> Parsed | None:
    """What a call on the model is about (None: no token ids or traceable rows among its arguments)."""
    names = param_names(fn, len(args))
    items = list(zip(names, args, strict=True)) + list(kwargs.items())
    ids = known = slot = None
    positions: Any = None
    placed: np.ndarray | None = None
    lead: tuple[int, ...] = ()
    for index, (key, value) in enumerate(items):
        if _POSITION_IDS.search(str(key).lower()):
            positions = value
        if _POSITIONS.search(str(key).lower()) or ids is not None:
            continue
        given = as_ids(value)
        if given is not None:
            ids, slot = given, (index if index < len(args) else key)
            continue
        if is_float_array(value) and value.ndim in (2, 3) and value.shape[-1] == dim:
            rows = tags.lookup(value)
            if rows is not None:
                lead = value.shape[:-1]
                ids = np.array([r[0] for r in rows], dtype=np.int64).reshape(lead)
                attached = [r[1] for r in rows if r[1] is not None]
                if len(attached) == len(rows):
                    known = np.stack(attached).reshape(*lead, -1)
                if any(r[2] is not None for r in rows):  # some rows embedded at explicit positions
                    placed = np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64)
                    placed = placed.reshape(lead)
    if ids is None:
        return None
    length = ids.shape[-1]
    square = [v for _, v in items if isinstance(v, np.ndarray) and v.dtype.kind in "bf" and v.ndim >= 2]
    mask = next((normalize_mask(v, length) for v in square if v.shape[-2:] == (length, length)), None)
    if positions is None and placed is not None:  # the others at their place in the sequence (the mask's)
        visible = np.tril(np.ones((length, length), dtype=bool)) if mask is None else mask
        positions = np.where(placed >= 0, placed, np.broadcast_to(visible.sum(axis=-1) - 1, placed.shape))
    return Parsed(ids, mask, known, slot, position_ids(positions, ids))
