"""Tag vectors: the embeddings and hidden states the grader's target model hands a verifier.

A verifier may embed tokens and run the model's block itself; the grader can answer only for values it can
trace back, so every row it hands out is a fresh random vector that names its token (and its position, or
the logits there), found again by its float32 bytes."""

from __future__ import annotations

import numpy as np


class Tags:
    """Tag vectors standing in for embeddings and hidden states.

    Row ``t`` of :attr:`table` is the embedding of token ``t``; :meth:`placed` makes fresh rows for tokens
    embedded at explicit positions (the rows carry them on to the model's block); :meth:`hidden` makes fresh
    rows that also carry the logits at their position. Rows are found again by their float32 bytes, so
    copies, slices, concatenations and float32/float64 casts keep them recognisable.
    """

    def __init__(self, rows: int, dim: int, dtype: np.dtype) -> None:
        self._rng = np.random.default_rng(20240517)
        self.dim, self.dtype = dim, dtype
        self.table = self._rng.standard_normal((rows, dim)).astype(np.float32).astype(dtype)
        self._index: dict[bytes, tuple[int, np.ndarray | None, int | None]] = {
            row.astype(np.float32).tobytes(): (i, None, None) for i, row in enumerate(self.table)
        }

    def lookup(self, x: np.ndarray) -> list[tuple[int, np.ndarray | None, int | None]] | None:
        rows = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
        found = []
        for row in rows:
            hit = self._index.get(row.tobytes())
            if hit is None:
                return None
            found.append(hit)
        return found

    def hidden(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Fresh rows (..., dim) naming each token and the logits at its position."""
        flat_ids, flat_logits = ids.reshape(-1), logits.reshape(-1, logits.shape[-1])
        rows = self._rng.standard_normal((len(flat_ids), self.dim)).astype(np.float32).astype(self.dtype)
        for row, t, lg in zip(rows, flat_ids, flat_logits, strict=True):
            self._index[row.astype(np.float32).tobytes()] = (int(t), lg, None)
        return rows.reshape(*ids.shape, self.dim)

    def placed(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Fresh rows (..., dim) naming each token and the position it was embedded at."""
        flat_ids = ids.reshape(-1)
        flat_pos = np.broadcast_to(positions, ids.shape).reshape(-1)
        rows = self._rng.standard_normal((len(flat_ids), self.dim)).astype(np.float32).astype(self.dtype)
        for row, t, q in zip(rows, flat_ids, flat_pos, strict=True):
            self._index[row.astype(np.float32).tobytes()] = (int(t), None, int(q))
        return rows.reshape(*ids.shape, self.dim)
