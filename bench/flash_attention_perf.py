"""Performance goals of the two flash attention references, measured against naive NumPy in one run.

    python bench/flash_attention_perf.py

Prints, for the reference forward (B=2, H=8, N=4096, D=64, T=128, causal) and backward (B=1, H=1, N=4096,
D=64, T=128, causal): the peak traced memory beyond inputs and outputs as a percentage of one N x N matrix,
and the wall time next to the naive full-matrix computation (one (b, h) head at a time). Goals (issues 4
and 5): forward memory <= 5% of an N x N matrix of the input dtype and time <= naive; backward memory <= 10%
of an N x N float64 matrix and time <= 1.5x naive. BLAS runs single-threaded, as in the grading sandbox,
unless the environment says otherwise. Exit status 1 if a goal is missed.
"""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Callable

from benchutil import ROOT, best_seconds, load, single_threaded_blas

single_threaded_blas()  # before numpy loads its BLAS

import numpy as np  # noqa: E402


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes traced during fn(), counting what it returns (the output is subtracted by the caller)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def naive_forward(Q: np.ndarray, K: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Causal softmax attention with the full (N, N) matrix, one head at a time, in the input dtype."""
    N, D = Q.shape[-2:]
    future = np.triu(np.ones((N, N), dtype=bool), k=1)
    out = np.empty_like(Q)
    for b in range(Q.shape[0]):
        for h in range(Q.shape[1]):
            s = Q[b, h] @ K[b, h].T / np.sqrt(D).astype(Q.dtype)
            s[future] = -np.inf
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            out[b, h] = (p / p.sum(axis=-1, keepdims=True)) @ V[b, h]
    return out


def bench_forward(dtype: type) -> bool:
    fa = load(ROOT / "reference/flash_attention/flash_attention.py")
    B, H, N, D, T = 2, 8, 4096, 64, 128
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((B, H, N, D)).astype(dtype) for _ in range(3))
    nxn = N * N * Q.itemsize
    output = Q.nbytes
    peak = traced_peak(lambda: fa.flash_attention_fwd(Q, K, V, T, causal=True))
    working = (peak - output) / nxn
    t_flash, got = best_seconds(lambda: fa.flash_attention_fwd(Q, K, V, T, causal=True))
    t_naive, ref = best_seconds(lambda: naive_forward(Q, K, V))
    err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
    ok = working <= 0.05 and t_flash <= t_naive
    print(
        f"forward  {np.dtype(dtype).name:7s} B={B} H={H} N={N} D={D} T={T} causal: "
        f"memory beyond inputs+output {working:6.2%} of N x N (goal <= 5%), "
        f"time {t_flash:.2f} s vs naive {t_naive:.2f} s = {t_flash / t_naive:.2f}x (goal <= 1x), "
        f"max rel diff {err:.1e}  {'OK' if ok else 'MISSED'}"
    )
    return ok


def bench_backward() -> bool:
    fb = load(ROOT / "reference/flash_attention_bwd/flash_attention_bwd.py")
    B, H, N, D, T = 1, 1, 4096, 64, 128
    rng = np.random.default_rng(1)
    Q, K, V, dO = (rng.standard_normal((B, H, N, D)) for _ in range(4))
    _, cache = fb.flash_attention_fwd(Q, K, V, T)
    nxn = N * N * 8
    outputs = 3 * Q.nbytes
    peak = traced_peak(lambda: fb.flash_attention_bwd(dO, cache, T))
    working = (peak - outputs) / nxn
    t_flash, got = best_seconds(lambda: fb.flash_attention_bwd(dO, cache, T))
    t_naive, ref = best_seconds(lambda: fb.naive_attention_bwd(Q, K, V, dO))
    err = max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(got, ref, strict=True))
    ok = working <= 0.10 and t_flash <= 1.5 * t_naive
    print(
        f"backward float64 B={B} H={H} N={N} D={D} T={T} causal: "
        f"memory beyond inputs+cache+grads {working:6.2%} of N x N (goal <= 10%; "
        f"{peak / nxn:.2%} with the gradients), "
        f"time {t_flash:.2f} s vs naive {t_naive:.2f} s = {t_flash / t_naive:.2f}x (goal <= 1.5x), "
        f"max rel diff {err:.1e}  {'OK' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    print(f"BLAS threads: {os.environ['OPENBLAS_NUM_THREADS']}, numpy {np.__version__}")
    results = [bench_forward(np.float32), bench_forward(np.float64), bench_backward()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
