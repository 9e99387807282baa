"""A KV cache for incremental decoding: preallocated per-layer buffers plus per-sequence lengths (NumPy only).

Layout: for each layer, K and V buffers of shape (B, H, capacity, Dh), contiguous along the position axis of
one (sequence, head) pair, so that attention over one sequence's history reads Dh * length contiguous values.
``lengths[layer, b]`` counts the tokens stored for sequence b; positions at or past it hold stale data that
attention must never read. A step appends at each sequence's own length, so sequences of a ragged batch
advance independently.
"""

from __future__ import annotations

import numpy as np


class CacheOverflowError(RuntimeError):
    """Appending would write past the preallocated capacity."""


class KVCache:
    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        capacity: int,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        shape = (batch_size, num_heads, capacity, head_dim)
        self.k = [np.zeros(shape, dtype=dtype) for _ in range(num_layers)]
        self.v = [np.zeros(shape, dtype=dtype) for _ in range(num_layers)]
        self.lengths = np.zeros((num_layers, batch_size), dtype=np.int64)
        self.capacity = capacity

    def append(self, layer: int, k_new: np.ndarray, v_new: np.ndarray, n_new: np.ndarray | None = None) -> None:
        """Store k_new, v_new of shape (B, H, T, Dh); sequence b keeps only its first n_new[b] tokens (the rest
        is padding). Raises CacheOverflowError, writing nothing, when a sequence would exceed the capacity."""
        batch, _, steps, _ = k_new.shape
        n_new = np.full(batch, steps, dtype=np.int64) if n_new is None else np.asarray(n_new, dtype=np.int64)
        start = self.lengths[layer]
        end = start + n_new
        if np.any(end > self.capacity):
            b = int(np.argmax(end))
            raise CacheOverflowError(
                f"layer {layer}, sequence {b}: {int(end[b])} tokens exceed the cache capacity {self.capacity}"
            )
        for b in range(batch):
            self.k[layer][b, :, start[b] : end[b]] = k_new[b, :, : n_new[b]]
            self.v[layer][b, :, start[b] : end[b]] = v_new[b, :, : n_new[b]]
        self.lengths[layer] = end

    def view(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K, V up to the longest stored sequence (views, no copy) and the per-sequence lengths."""
        longest = int(self.lengths[layer].max(initial=0))
        return self.k[layer][:, :, :longest], self.v[layer][:, :, :longest], self.lengths[layer].copy()

    def reset(self, batch_index: int | None = None) -> None:
        """Forget every sequence, or one slot of the batch (its buffer is reused by the next request)."""
        if batch_index is None:
            self.lengths[:] = 0
        else:
            self.lengths[:, batch_index] = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.k) + sum(a.nbytes for a in self.v)
