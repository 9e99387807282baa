"""Grading tests for the flash_attention prompt: tiled attention forward with the online softmax, in NumPy.

Graded: O = softmax(Q K^T / sqrt(D) + causal mask) V against a float64 full-softmax oracle, by the normwise
relative error max|O - ref| / max|ref| (the prompt's "relative error"); no (N, N) allocation, measured from
outside the sandboxed child; the tile edge cases (N not a multiple of T, prime N, T > N); the non-causal
path; the default (the prompt's signature makes causal=True the default); and the two numerical hazards the
prompt names, on inputs that expose them.

Where the prompt misleads, or says less than it seems to:
- Its recurrence computes ``l`` before ``P`` and so evaluates exp(S - m_new) twice; that is only wasteful,
  not wrong, and nothing here depends on the order. The scale 1/sqrt(D) is in the prompt's S and is graded.
- The "first KV tile fully masked" hazard cannot occur with equal Q and KV tiles visited left to right (the
  first tile of every row holds key 0). It does occur with other visiting orders (e.g. from the diagonal
  tile backwards, or unskipped masked tiles first), where m stays -inf and exp(-inf - (-inf)) = NaN. The
  tests cannot choose a submission's tile order; every causal test rejects NaN, and
  test_fully_masked_tile_rows runs the hazard-prone shapes in float32 and float64.
- "Verify via tracemalloc": a submission's own tracemalloc proves nothing (it can be stopped); the grader
  reads the child's peak resident memory from outside instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmchallenges.challenges.flash_attention.driver import llmc_drive_flash_attention as driver
from pytest_llmchallenges.challenges.flash_attention.oracle import attention_forward
from pytest_llmchallenges.grading import GradingFailure, assert_close

CHALLENGE = "flash_attention"

RTOL = 1e-4  # the prompt's criterion; float64 answers land near 1e-15
EPS32 = float(np.finfo(np.float32).eps)


def qkv(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64, qk_scale: float = 1.0):
    """Q, K, V; Q and K scaled by ``qk_scale``, so that scores have standard deviation ~qk_scale**2."""
    q = rng.standard_normal(shape) * qk_scale
    k = rng.standard_normal(shape) * qk_scale
    v = rng.standard_normal(shape)
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


def float32_rtol(q: np.ndarray, k: np.ndarray) -> float:
    """Tolerance for a float32 computation: the scores carry an absolute rounding error of order
    eps32 * max|S| (the reference lands at ~0.4 of that), and O inherits it; 64x leaves room for other
    summation orders. Wrong rescaling or masking is off by O(1) or NaN."""
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    max_score = float(np.max(np.abs(q64 @ k64.swapaxes(-1, -2)))) / np.sqrt(q.shape[-1])
    return max(RTOL, 64 * EPS32 * max_score)


def check_cases(sandbox, cases: list[dict], label: str) -> None:
    """Run every case in one child and compare each with the oracle."""
    outs = sandbox.run(driver.forward_many, cases).value
    for case, out in zip(cases, outs, strict=True):
        q, k, v = case["Q"], case["K"], case["V"]
        causal = True if case.get("causal") is None else case["causal"]
        rtol = case.get("rtol", RTOL)
        what = f"{label}: O for {q.dtype} (B, H, N, D) = {q.shape}, tile_size={case['tile_size']}, causal={causal}"
        assert_close(out, attention_forward(q, k, v, causal)[0], rtol, what)


def test_matches_naive_small(sandbox, rng):
    """The prompt's test: B=1, H=1, N=256, D=64, T=64, causal; relative error < 1e-4 against naive attention."""
    q, k, v = qkv(rng, (1, 1, 256, 64))
    out = sandbox.run(driver.forward, q, k, v, 64, causal=True).value
    assert_close(out, attention_forward(q, k, v, True)[0], RTOL, "O (N=256, T=64, causal)")


def test_no_nxn_allocation(sandbox, rng):
    """The prompt's memory test: B=2, H=8, N=4096, D=64, T=128, causal, float64 inputs.

    Verdict: the child's peak resident memory during the call, read from outside (the inputs are built
    before the measurement starts), must stay below the output plus half of one N x N matrix of the input
    dtype. A full-matrix implementation needs at least one N x N score matrix per head (134 MB here) on top
    of that; a tiled one needs the output (B*H*N*D, a quarter of N x N here) and O(T*N) per tile. The bound
    leaves room for two extra full-size (B, H, N, D) arrays, e.g. a float64 accumulator and a copy of Q.
    Rows of O are spot-checked against the oracle, so that a fast wrong answer cannot pass.
    """
    B, H, N, D, T = 2, 8, 4096, 64, 128
    seed = int(rng.integers(2**31))
    nxn = N * N * 8
    output = B * H * N * D * 8
    limit = output + nxn // 2
    result = sandbox.run(  # peak_limit: the watchdog stops a full-matrix answer as soon as it passes the bound
        driver.forward_memory, seed, [B, H, N, D], "float64", T, measure_memory=True, timeout=120, peak_limit=limit,
    )  # fmt: skip
    rows = np.sort(rng.choice(N, size=24, replace=False))  # chosen after the result: the child never saw them
    rows[:2] = (0, N - 1)
    if result.peak_bytes is None:
        pytest.skip("the child's peak resident memory cannot be read on this system")
    if result.peak_bytes > limit:
        raise GradingFailure(
            "memory",
            f"peak memory of the call {result.peak_bytes / 2**20:.0f} MiB > {limit / 2**20:.0f} MiB "
            f"(output {output / 2**20:.0f} MiB + half of one N x N float64 matrix, {nxn / 2**21:.0f} MiB); "
            f"{result.attribution or 'no attribution'}",
        )
    rng_inputs = np.random.default_rng(seed)
    q, k, v = (rng_inputs.standard_normal((B, H, N, D)) for _ in range(3))
    expected = attention_forward(q, k, v, True, rows=rows)[0]
    assert_close(
        result.value["O"][:, :, rows, :], expected, RTOL, f"O at {len(rows)} spot-checked rows of the N=4096 run"
    )


def test_uneven_tiles(sandbox, rng):
    """Tile edge cases: N not a multiple of T (the last tile is partial), prime N with a small T, T > N
    (one partial tile), and N = 1. A loop like range(N // T) or range(0, N - T + 1, T) drops the rest."""
    shapes = [(200, 64), (97, 16), (50, 64), (1, 16), (130, 128)]
    cases = []
    for n, t in shapes:
        q, k, v = qkv(rng, (1, 2, n, 32))
        cases.append({"Q": q, "K": k, "V": v, "tile_size": t, "causal": True})
    check_cases(sandbox, cases, "uneven tiles")


def test_non_causal(sandbox, rng):
    """causal=False attends to every key: no tile may be skipped and nothing masked (also with a partial
    last tile)."""
    cases = []
    for n, t in [(192, 64), (100, 32)]:
        q, k, v = qkv(rng, (2, 2, n, 32))
        cases.append({"Q": q, "K": k, "V": v, "tile_size": t, "causal": False})
    check_cases(sandbox, cases, "non-causal")


def test_large_magnitude_scores(sandbox, rng):
    """Scores in the hundreds (float32) and past 709 (float64): no inf/NaN, and the float64 oracle's answer.

    exp(m_new - m_old) as the rescale factor overflows here (and is wrong anyway); so does exp(S) without
    subtracting the running max, in float32 from ~88 and in float64 from ~709. Tolerance for float32: see
    float32_rtol (the scores themselves are only known to ~eps32 * max|S|).
    """
    q32, k32, v32 = qkv(rng, (1, 2, 256, 64), np.float32, qk_scale=np.sqrt(60.0))  # max |S| ~ 300
    q64, k64, v64 = qkv(rng, (1, 2, 256, 64), np.float64, qk_scale=np.sqrt(200.0))  # max |S| ~ 1000
    cases = [
        {"Q": q32, "K": k32, "V": v32, "tile_size": 64, "causal": True, "rtol": float32_rtol(q32, k32)},
        {"Q": q64, "K": k64, "V": v64, "tile_size": 64, "causal": True},
    ]
    check_cases(sandbox, cases, "large scores")


def test_default_is_causal(sandbox, rng):
    """Called without ``causal``, the prompt's signature flash_attention_fwd(Q, K, V, tile_size, causal=True)
    gives causal attention."""
    q, k, v = qkv(rng, (1, 2, 128, 32))
    out = sandbox.run(driver.forward, q, k, v, 32).value
    assert_close(out, attention_forward(q, k, v, True)[0], RTOL, "O called without causal (default: causal)")


def test_fully_masked_tile_rows(sandbox, rng):
    """The prompt's NaN hazard: causal rows meet KV tiles in which every key is masked. Several tiles per
    row, a partial last tile, in float32 and float64; every output finite and right. Catches answers that
    visit masked tiles first (m = -inf, exp(-inf - (-inf)) = NaN) without a guard."""
    cases = []
    for dtype in (np.float32, np.float64):
        for n, t in [(160, 32), (100, 16)]:
            q, k, v = qkv(rng, (1, 2, n, 32), dtype)
            rtol = float32_rtol(q, k) if dtype == np.float32 else RTOL
            cases.append({"Q": q, "K": k, "V": v, "tile_size": t, "causal": True, "rtol": rtol})
    check_cases(sandbox, cases, "masked tiles")
