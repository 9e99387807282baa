"""Float64 oracle for softmax over the last axis followed by top-k, and logits whose top-k is unambiguous.

Tie rule of the oracle: equal logits are ordered by ascending index (what a stable descending sort gives).
The prompt states no tie rule, so tests that compare order exactly use logits from :func:`separated_logits`,
whose k + 1 largest values per row are strictly separated (no tie can matter); tests with deliberate ties
accept any order among equal logits.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64, with the row maximum subtracted."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices (int64, [..., k]) of the k largest logits per row: descending value, then ascending index."""
    x = np.asarray(logits, dtype=np.float64)
    v = x.shape[-1]
    if not 1 <= k <= v:
        raise ValueError(f"k = {k} outside 1..{v}")
    rows = x.reshape(-1, v)
    kth = np.partition(rows, v - k, axis=-1)[:, v - k]  # the k-th largest value of each row
    out = np.empty((rows.shape[0], k), dtype=np.int64)
    for r, row in enumerate(rows):
        cand = np.flatnonzero(row >= kth[r])  # ascending indices; ties at the k-th value included
        order = np.lexsort((cand, -row[cand]))  # primary: value descending; secondary: index ascending
        out[r] = cand[order[:k]]
    return out.reshape(*x.shape[:-1], k)


def softmax_topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 [..., k], probabilities float64 [..., k]) of the full-row softmax's k largest entries."""
    idx = topk_indices(logits, k)
    return idx, np.take_along_axis(softmax(logits), idx, axis=-1)


def separated_logits(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    k: int,
    scale: float = 2.0,
    offset: float | np.ndarray = 0.0,
    gap: float = 1e-3,
) -> np.ndarray:
    """float32 logits ~ N(offset, scale^2) per row whose k + 1 largest values are at least ``gap`` apart.

    Drawn at random, then the top k + 1 of each row are pushed down where needed to open the gaps, and the
    rest clipped below the (k+1)-th; ``offset`` may be one value per row (shape[:-1]). The result is checked
    after rounding to float32: the oracle's indices and order are then the only correct answer.
    """
    v = shape[-1]
    x = rng.standard_normal(shape).reshape(-1, v) * scale
    n_top = min(k + 1, v)
    top = np.argpartition(-x, n_top - 1, axis=-1)[:, :n_top]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(x, top, -1), axis=-1, kind="stable"), -1)
    vals = np.take_along_axis(x, top, -1)
    for j in range(1, n_top):
        vals[:, j] = np.minimum(vals[:, j], vals[:, j - 1] - gap)
    floor = vals[:, n_top - 1 : n_top]
    x = np.minimum(x, floor)  # everything outside the top k + 1 ends at or below the (k+1)-th
    np.put_along_axis(x, top, vals, -1)
    x = x + np.broadcast_to(np.asarray(offset, dtype=np.float64), shape[:-1]).reshape(-1, 1)
    out = x.astype(np.float32)
    top_k = np.take_along_axis(out.astype(np.float64), top[:, :k], -1)
    if np.any(np.diff(top_k, axis=-1) >= 0):
        raise ValueError("gap too small for float32 at this offset: top-k values collide after rounding")
    if k < v:
        rest = out.astype(np.float64).copy()
        np.put_along_axis(rest, top[:, :k], -np.inf, -1)
        if np.any(rest.max(axis=-1) >= top_k[:, -1]):
            raise ValueError("gap too small for float32 at this offset: the k-th value ties with the rest")
    return out.reshape(shape)


def edge_maxima(x: np.ndarray) -> np.ndarray:
    """A copy with the row maximum moved to the last position in every third row and to the first in the next
    one: the ends of a row (unaligned heads and tails, last partial tiles) are where indexing bugs live."""
    x = x.copy()
    rows = x.reshape(-1, x.shape[-1])
    for r, row in enumerate(rows):
        target = {0: row.size - 1, 1: 0}.get(r % 3)
        if target is not None:
            top = int(np.argmax(row))
            row[[top, target]] = row[[target, top]]
    return x
