"""Tiled (Flash) attention forward pass with the online softmax, in NumPy.

The whole batch and all heads are processed at once: every array below carries leading (B, H) axes, and the
only Python loops are over query tiles and key/value tiles. The largest temporaries are one (B, H, T, T)
score tile and a few (B, H, T, D) accumulators; no (N, N) array is ever allocated.

Online softmax, per query row, over the key tiles seen so far:
    m = running max of the scores,  l = sum_j exp(S_j - m),  O = sum_j exp(S_j - m) V_j
When a new tile raises the max from m_old to m_new, every term already summed was computed relative to
m_old, and exp(S_j - m_old) * exp(m_old - m_new) = exp(S_j - m_new). So the old l and O are multiplied by
    correction = exp(m_old - m_new)     (<= 1, because m_new >= m_old)
The inverted factor exp(m_new - m_old) is >= 1 and may be huge: it multiplies old terms by exp(2 (m_new -
m_old)) too much, which is wrong even when it does not overflow, and it overflows float32 as soon as the max
grows by more than ~88 (float64: ~709). The result is O / l after the last tile; the max cancels there.

Numerical hazard of a row whose first KV tile is fully masked (causal): all its scores in that tile are
-inf, so row_max = -inf and, with m_old = -inf, m_new = -inf. Then correction = exp(-inf - (-inf)) =
exp(NaN) and P = exp(-inf - (-inf)) = NaN: the NaN enters O and l and survives every later tile, since
NaN * 0 is still NaN. (l = 0 at that point, so a final O / l would also divide by zero.) The fix used
below: subtract a finite stand-in (0) wherever m_new is still -inf, so that masked scores give exp(-inf) =
0 exactly and the row stays at m = -inf, l = 0, O = 0 until a tile with a visible key arrives. With equal Q
and KV tiles processed left to right the first tile of every row contains key 0, so this cannot happen
here; it does with other tile orders or shapes, and the guard costs nothing.
"""

from __future__ import annotations

import numpy as np


def flash_attention_fwd(Q: np.ndarray, K: np.ndarray, V: np.ndarray, tile_size: int, causal: bool = True) -> np.ndarray:
    """Return softmax(Q K^T / sqrt(D) [+ causal mask]) V of shape (B, H, N, D), tile by tile.

    Computes in the inputs' floating dtype (float32 stays float32), so the memory per tile is that of the
    input dtype.
    """
    dtype = np.result_type(Q, K, V, np.float32)
    Q, K, V = (np.asarray(x, dtype=dtype) for x in (Q, K, V))
    B, H, N, D = Q.shape
    T = int(tile_size)
    scale = dtype.type(1.0 / np.sqrt(D))
    out = np.empty((B, H, N, D), dtype=dtype)

    for q0 in range(0, N, T):
        q1 = min(q0 + T, N)  # the last tile may be partial: N need not be a multiple of T
        q_tile = Q[:, :, q0:q1]
        m = np.full((B, H, q1 - q0, 1), -np.inf, dtype=dtype)  # running row max
        row_sum = np.zeros((B, H, q1 - q0, 1), dtype=dtype)  # l: running sum of exp(S - m)
        acc = np.zeros((B, H, q1 - q0, D), dtype=dtype)  # running sum of exp(S - m) V

        # Causal: keys beyond the tile's last query (k0 > q1 - 1) are all masked; those tiles are skipped.
        kv_end = q1 if causal else N
        for k0 in range(0, kv_end, T):
            k1 = min(k0 + T, N)
            s = q_tile @ K[:, :, k0:k1].swapaxes(-1, -2)  # (B, H, Tq, Tk) local scores
            s *= scale
            if causal and k1 - 1 > q0:  # the tile straddles the diagonal: mask keys j > query i
                future = np.arange(k0, k1)[None, :] > np.arange(q0, q1)[:, None]
                np.copyto(s, -np.inf, where=future)

            m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
            m_safe = np.where(np.isfinite(m_new), m_new, 0)  # see the module docstring: no -inf - -inf
            correction = np.exp(m - m_safe)  # exp(m_old - m_new) <= 1; 0 while m_old is -inf
            s -= m_safe
            p = np.exp(s, out=s)  # stable probabilities, in place of the scores
            row_sum *= correction
            row_sum += p.sum(axis=-1, keepdims=True)
            acc *= correction
            acc += p @ V[:, :, k0:k1]
            m = m_new

        out[:, :, q0:q1] = acc / row_sum
    return out


def naive_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool = True) -> np.ndarray:
    """Full-matrix softmax attention in float64, for the tests below."""
    Q, K, V = (np.asarray(x, dtype=np.float64) for x in (Q, K, V))
    N, D = Q.shape[-2:]
    s = Q @ K.swapaxes(-1, -2) / np.sqrt(D)
    if causal:
        s[..., np.triu(np.ones((N, N), dtype=bool), k=1)] = -np.inf
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ V


def test_matches_naive() -> None:
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((1, 1, 256, 64)) for _ in range(3))
    out = flash_attention_fwd(Q, K, V, tile_size=64, causal=True)
    ref = naive_attention(Q, K, V, causal=True)
    err = np.max(np.abs(out - ref)) / np.max(np.abs(ref))
    print(f"N=256 causal: relative error {err:.2e}")
    assert err < 1e-4


def test_no_nxn_allocation() -> None:
    """Peak traced memory during the call stays far below one (N, N) matrix of the input dtype."""
    import tracemalloc

    B, H, N, D, T = 2, 8, 4096, 64, 128
    rng = np.random.default_rng(1)
    Q, K, V = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
    nxn = N * N * Q.itemsize
    output = B * H * N * D * Q.itemsize
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = flash_attention_fwd(Q, K, V, tile_size=T, causal=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"N=4096: peak {peak / 2**20:.1f} MiB incl. the {output / 2**20:.1f} MiB output; one N x N matrix:"
        f" {nxn / 2**20:.1f} MiB; working memory {(peak - output) / nxn:.1%} of it"
    )
    assert peak - output < 0.1 * nxn
    assert np.all(np.isfinite(out))


if __name__ == "__main__":
    test_matches_naive()
    test_no_nxn_allocation()
    print("all tests passed")
