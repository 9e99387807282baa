"""Grading tests for the flash_attention_bwd prompt: tiled attention backward with recomputation, in NumPy.

Graded: dQ, dK, dV of f = sum(O * dO) from the submission's own forward/backward pair, against central
finite differences through its own forward (the prompt's Test 1) and against a float64 full-matrix oracle;
the memory bound of forward + backward, measured from outside the sandboxed child; tile edge cases and the
non-causal path; float32 inputs; and the cache's logsumexp L. Errors are normwise: max|got - ref| / max|ref|
per tensor, which is what the messages print.

Where the prompt misleads:
- Step 2e's ``rowsum_PdP = (P * dP).sum(axis=-1)`` per (Q tile, KV tile) pair is wrong. The softmax
  gradient is dS_ij = P_ij (dP_ij - D_i) with D_i = sum_j P_ij dP_ij over the WHOLE row, all KV tiles.
  A per-tile sum differs whenever a row spans more than one KV tile, i.e. for every row past the first tile
  (N > T). The cheap correct form is D_i = sum_j P_ij (dO_i . V_j) = dO_i . O_i = rowsum(dO * O), computed
  once before the tile loops. Answers that follow the prompt literally fail the gradient tests.
- Steps 2f and 2g, ``dQ += dS @ K`` and ``dK += dS^T @ Q``, drop the 1/sqrt(D) factor: S = scale * Q K^T,
  so the chain rule gives dQ = scale * dS K and dK = scale * dS^T Q. Following the text gives gradients
  sqrt(D) times too large.
- Step 3 says to initialise dK_tile and dV_tile "within each Q tile"; a KV tile's dK and dV collect
  contributions from every Q tile, so they must be accumulated across the outer loop (or the loops
  swapped). Overwriting them is the classic bug, caught by the gradient tests.
- "Use tracemalloc to verify peak memory": a submission's own tracemalloc proves nothing (it can be
  stopped or reset); the grader reads the child's peak resident memory from outside.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmchallenges.challenges.flash_attention_bwd.driver import llmc_drive_flash_attention_bwd as driver
from pytest_llmchallenges.challenges.flash_attention_bwd.oracle import (
    attention_backward,
    attention_dq_rows,
    attention_forward,
)
from pytest_llmchallenges.grading import GradingFailure, as_array, assert_close, normwise_error, wrong

CHALLENGE = "flash_attention_bwd"

RTOL = 1e-4  # the prompt's Test 2 criterion; float64 answers land near 1e-15
FD_RTOL = 1e-5  # the prompt's Test 1 criterion; central differences with step 1e-5 are good to ~1e-10 here
FD_STEP = 1e-5
EPS32 = float(np.finfo(np.float32).eps)
GRADS = ("dQ", "dK", "dV")


def inputs(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64, qk_scale: float = 1.0):
    """Q, K, V, dO; Q and K scaled by ``qk_scale`` (scores then have standard deviation ~qk_scale**2)."""
    q, k = (rng.standard_normal(shape) * qk_scale for _ in range(2))
    v, do = (rng.standard_normal(shape) for _ in range(2))
    return tuple(x.astype(dtype) for x in (q, k, v, do))


def case(q, k, v, do, tile_size: int, causal: bool | None = True) -> dict:
    return {"Q": q, "K": k, "V": v, "dO": do, "tile_size": tile_size, "causal": causal}


def check_gradients(got: dict, c: dict, rtol: float, label: str) -> None:
    """O and dQ, dK, dV of one case against the float64 oracle on the very same inputs."""
    causal = True if c["causal"] is None else c["causal"]
    q, k, v, do = c["Q"], c["K"], c["V"], c["dO"]
    shape = f"{q.dtype} (B, H, N, D) = {q.shape}, tile_size={c['tile_size']}, causal={causal}"
    assert_close(got["O"], attention_forward(q, k, v, causal)[0], rtol, f"{label}: O for {shape}")
    for name, expected in zip(GRADS, attention_backward(q, k, v, do, causal), strict=True):
        assert_close(got[name], expected, rtol, f"{label}: {name} for {shape}")


def float32_rtol(q: np.ndarray, k: np.ndarray) -> float:
    """Tolerance for a float32 computation: scores are only known to ~eps32 * max|S|, and the reference's
    gradients land within ~0.75 of that; 64x leaves room for other summation orders."""
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    max_score = float(np.max(np.abs(q64 @ k64.swapaxes(-1, -2)))) / np.sqrt(q.shape[-1])
    return max(RTOL, 64 * EPS32 * max_score)


def test_gradcheck_finite_differences(sandbox, rng):
    """The prompt's Test 1: B=1, H=1, N=64, D=32, T=16, causal, float64. Central differences of
    f = sum(O * G) through the submission's own forward: dV at all elements, dQ and dK at 10 random
    positions; relative error < 1e-5, normwise (max|analytic - numeric| / max|gradient| over the tensor).
    The numeric values are also checked against the oracle, so a wrong forward cannot pass by a backward
    that matches it."""
    shape = (1, 1, 64, 32)
    q, k, v, g = inputs(rng, shape)
    spots = np.stack([rng.integers(0, n, size=10) for n in shape], axis=1)
    got = sandbox.run(driver.gradcheck, q, k, v, g, 16, True, FD_STEP, spots.tolist(), timeout=120).value
    expected = dict(zip(GRADS, attention_backward(q, k, v, g, True), strict=True))
    at = tuple(spots.T)
    for name, numeric, analytic in [
        ("dV", got["fd_dV"], as_array(got["dV"], "dV")),
        ("dQ", got["fd_dQ"], as_array(got["dQ"], "dQ")[at]),
        ("dK", got["fd_dK"], as_array(got["dK"], "dK")[at]),
    ]:
        scale = float(np.max(np.abs(expected[name])))
        where = "at every element" if name == "dV" else "at 10 positions"
        if not np.all(np.isfinite(analytic)) or not np.all(np.isfinite(numeric)):
            wrong(f"{name}: NaN or inf among the analytic or numeric values {where}")
        err = float(np.max(np.abs(analytic - numeric))) / scale
        if not err < FD_RTOL:
            wrong(
                f"{name} {where}: max|analytic - central difference| / max|{name}| = {err:.3g} > {FD_RTOL:g} "
                "(N=64, T=16, causal)"
            )
        reference = expected[name] if name == "dV" else expected[name][at]
        assert_close(numeric / scale, reference / scale, FD_RTOL, f"{name} by central differences of the forward")


def test_matches_naive_backward(sandbox, rng):
    """The prompt's Test 2: B=2, H=4, N=256, D=64, T=64, causal, float64; dQ, dK, dV within 1e-4 of the
    full-matrix backward."""
    c = case(*inputs(rng, (2, 4, 256, 64)), tile_size=64)
    got = sandbox.run(driver.gradients, [c]).value[0]
    check_gradients(got, c, RTOL, "N=256, T=64")


def test_backward_memory(sandbox, rng):
    """The prompt's Test 3: B=1, H=1, N=4096, D=64, T=128, causal: the peak memory of forward + backward
    below 20% of one N x N float64 matrix (26.8 MB).

    Measured as the child's peak resident memory from outside, after the inputs (Q, K, V, dO) are built; it
    includes O, L and the three gradients (8 MB together), which leaves ample room for tiles and no room
    for an N x N score, probability or gradient matrix (134 MB each). Rows of O and dQ are spot-checked."""
    B, H, N, D, T = 1, 1, 4096, 64, 128
    seed = int(rng.integers(2**31))
    nxn = N * N * 8
    limit = nxn // 5
    result = sandbox.run(
        driver.forward_backward_memory, seed, [B, H, N, D], T, measure_memory=True, timeout=120, peak_limit=limit
    )
    rows = np.sort(rng.choice(N, size=24, replace=False))  # chosen after the result: the child never saw them
    rows[:2] = (0, N - 1)
    if result.peak_bytes is None:
        pytest.skip("the child's peak resident memory cannot be read on this system")
    if result.peak_bytes >= limit:
        raise GradingFailure(
            "memory",
            f"peak memory of forward + backward {result.peak_bytes / 2**20:.1f} MiB >= 20% of one N x N float64 "
            f"matrix ({limit / 2**20:.1f} MiB); {result.attribution or 'no attribution'}",
        )
    gen = np.random.default_rng(seed)
    q, k, v, do = (gen.standard_normal((B, H, N, D)) for _ in range(4))
    assert_close(
        result.value["O"][:, :, rows], attention_forward(q, k, v, True, rows=rows)[0], RTOL, "O at spot rows, N=4096"
    )
    assert_close(result.value["dQ"][:, :, rows], attention_dq_rows(q, k, v, do, rows), RTOL, "dQ at spot rows, N=4096")


def test_uneven_and_noncausal(sandbox, rng):
    """N not a multiple of T, prime N with a small T, T > N, N = 1, and non-causal attention (every tile
    visited, nothing masked), in one child."""
    causal_shapes = [(100, 32), (97, 8), (50, 64), (1, 16)]
    noncausal_shapes = [(96, 32), (75, 16)]
    cases = [case(*inputs(rng, (1, 2, n, 16)), tile_size=t, causal=True) for n, t in causal_shapes]
    cases += [case(*inputs(rng, (1, 2, n, 16)), tile_size=t, causal=False) for n, t in noncausal_shapes]
    for got, c in zip(sandbox.run(driver.gradients, cases).value, cases, strict=True):
        check_gradients(got, c, RTOL, "edge case")


def test_float32_inputs(sandbox, rng):
    """float32 Q, K, V, dO with scores up to ~150: finite gradients within a stated float32 tolerance
    (float32_rtol: 64 * eps32 * max|S|, i.e. ~1e-3 here). Recomputing P as exp(S) * exp(-L) instead of
    exp(S - L) overflows float32 here."""
    cases = [
        case(*inputs(rng, (1, 2, 128, 32), np.float32, qk_scale=np.sqrt(30.0)), tile_size=32),
        case(*inputs(rng, (2, 2, 80, 16), np.float32), tile_size=16),
    ]
    for got, c in zip(sandbox.run(driver.gradients, cases).value, cases, strict=True):
        check_gradients(got, c, float32_rtol(c["Q"], c["K"]), "float32")


def test_forward_output_and_logsumexp(sandbox, rng):
    """The forward returns O and a cache holding L (B, H, N), the logsumexp of each row of scaled, masked
    scores, L_i = m_i + log(l_i), as the prompt defines it; causal and non-causal, partial last tile."""
    for causal in (True, False):
        q, k, v, _ = inputs(rng, (2, 2, 100, 32))
        got = sandbox.run(driver.forward, q, k, v, 32, causal=causal).value
        out, lse = attention_forward(q, k, v, causal)
        assert_close(got["O"], out, RTOL, f"O (N=100, T=32, causal={causal})")
        if got["L"] is None:
            wrong("the forward's cache holds no logsumexp L of shape (B, H, N) (looked for cache['L'], 'lse'...)")
        err = normwise_error(as_array(got["L"], "L"), lse)
        if not err < 1e-6:
            wrong(f"cache L (causal={causal}): normwise relative error {err:.3g} > 1e-6 against the logsumexp")
