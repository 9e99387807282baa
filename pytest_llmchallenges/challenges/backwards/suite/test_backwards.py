"""Grading tests for the backwards prompt: LayerNorm forward and hand-derived backward in NumPy.

The submission's own forward produces the cache its backward consumes; eps is always passed explicitly where
the API takes it (defaults differ between answers). Gradients are those of L = sum(y * dy).

Inputs are what the prompt states: x of shape (B, T, D), gamma and beta of shape (D,); dgamma and dbeta are
summed over B and T. "Numerically stable" is judged on inputs where the one-pass variance E[x^2] - E[x]^2
cancels catastrophically in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards as driver
from pytest_llmchallenges.challenges.backwards.oracle import layer_norm, layer_norm_grads
from pytest_llmchallenges.child.llmc_scan import scan_folder
from pytest_llmchallenges.grading import GradingFailure, as_array, assert_close, wrong

CHALLENGE = "backwards"

# Normwise relative tolerances. float64: the analytic gradient is exact up to a few ulps times D. float32:
# a correct float32 implementation lands near 1e-7 on well-conditioned rows; 1e-4 leaves room for D up to 128
# and for accumulation orders other than NumPy's pairwise sums.
RTOL = {np.float64: 1e-9, np.float32: 1e-4}
# Ill-conditioned float32 inputs (offset 1e4, near-constant rows): the float32 mean itself is uncertain by half
# an ulp of the offset, i.e. 5e-4 of the row's spread at offset 1e4 and 1.3e-3 for rows 100 + 3e-3 * noise, so
# a correct two-pass implementation is within ~3e-3 of the float64 oracle; the one-pass variance is off by O(1)
# or NaN. 2e-2 separates the two with a wide margin on both sides.
STABILITY_RTOL = 2e-2
FD_STEP = 1e-5
FD_RTOL = 1e-6

AUTODIFF_FRAMEWORKS = {
    "torch", "jax", "jaxlib", "flax", "tensorflow", "keras", "autograd", "mxnet", "paddle", "chainer",
    "theano", "tinygrad", "micrograd", "functorch", "mlx",
}  # fmt: skip


def _case(rng: np.random.Generator, shape: tuple[int, ...], dtype: type, eps: float = 1e-5, **kw: float) -> dict:
    """Inputs with a nonzero mean and spread, so that every term of the gradient matters."""
    d = shape[-1]
    x = rng.standard_normal(shape) * kw.get("scale", 2.0) + kw.get("offset", 3.0)
    gamma = rng.standard_normal(d) * kw.get("gamma_scale", 1.0) + kw.get("gamma_offset", 0.5)
    beta = rng.standard_normal(d)
    dy = rng.standard_normal(shape)
    return {k: np.asarray(v, dtype) for k, v in dict(x=x, gamma=gamma, beta=beta, dy=dy).items()} | {"eps": eps}


def _check(got: dict, case: dict, rtol: float, label: str) -> None:
    """y, dx, dgamma, dbeta of one case against the float64 oracle evaluated on the very same inputs."""
    if "error" in got:
        raise GradingFailure("error", f"{label}: {got['error']}")
    expect_y = layer_norm(case["x"], case["gamma"], case["beta"], case["eps"])
    expect = dict(
        zip(("dx", "dgamma", "dbeta"), layer_norm_grads(case["x"], case["gamma"], case["dy"], case["eps"]), strict=True)
    )
    assert_close(got["y"], expect_y, rtol, f"{label} y")
    for key in ("dx", "dgamma", "dbeta"):
        assert_close(got[key], expect[key], rtol, f"{label} {key}")


def test_forward_matches_oracle(sandbox, rng):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta with the biased (1/D) variance, float64 and float32."""
    cases = [_case(rng, (2, 5, 16), np.float64), _case(rng, (3, 4, 24), np.float32)]
    results = sandbox.run(driver.gradients, cases).value
    for case, got in zip(cases, results, strict=True):
        label = f"{case['x'].dtype} {case['x'].shape}"
        assert_close(got["y"], layer_norm(case["x"], case["gamma"], case["beta"], case["eps"]),
                     RTOL[case["x"].dtype.type], f"{label} y")  # fmt: skip


def test_gradients_match_oracle(sandbox, rng):
    """dx, dgamma, dbeta against the float64 analytic oracle on several (B, T, D) shapes, D = 1 included,
    in float64 and float32, plus one case where eps is comparable to the variance (eps must be honoured
    and sit inside the square root)."""
    shapes = [(2, 5, 16), (3, 4, 1), (1, 7, 33), (4, 3, 128)]
    cases = [_case(rng, s, dt) for dt in (np.float64, np.float32) for s in shapes]
    cases.append(_case(rng, (2, 3, 8), np.float64, eps=1e-2, scale=0.1))
    results = sandbox.run(driver.gradients, cases).value
    for case, got in zip(cases, results, strict=True):
        label = f"{case['x'].dtype} x{case['x'].shape} eps={case['eps']:g}"
        _check(got, case, RTOL[case["x"].dtype.type], label)


def test_finite_difference(sandbox, rng):
    """The prompt's gradient check, done by the grader: central differences of L = sum(y * dy) through the
    submission's own forward (float64) against its own backward, for every entry of x, gamma and beta."""
    case = _case(rng, (2, 3, 6), np.float64)
    points, where = [], []
    for name in ("x", "gamma", "beta"):
        for index in np.ndindex(case[name].shape):
            for sign in (1.0, -1.0):
                moved = {k: case[k].copy() for k in ("x", "gamma", "beta")}
                moved[name][index] += sign * FD_STEP
                points.append((moved["x"], moved["gamma"], moved["beta"]))
            where.append((name, index))
    out = sandbox.run(driver.finite_differences, case, points).value
    ys = [as_array(y, "y") for y in out["ys"]]
    numeric = {k: np.zeros_like(case[k]) for k in ("x", "gamma", "beta")}
    for i, (name, index) in enumerate(where):
        numeric[name][index] = (np.sum(ys[2 * i] * case["dy"]) - np.sum(ys[2 * i + 1] * case["dy"])) / (2 * FD_STEP)
    for name, key in (("x", "dx"), ("gamma", "dgamma"), ("beta", "dbeta")):
        assert_close(out["grads"][key], numeric[name], FD_RTOL, f"{key} against central differences of its forward")


def test_numerical_stability(sandbox, rng):
    """float32 rows offset by 1e4, near-constant rows (variance ~ 0) and exactly constant rows, and large and
    tiny gamma: every output finite and within STABILITY_RTOL of the float64 oracle on the same float32 inputs.

    The one-pass variance E[x^2] - E[x]^2 fails here: at offset 1e4, E[x^2] = 1e8 has an ulp of 8 in float32,
    far more than the variance of 1; it even goes negative, and sqrt(var + eps) turns NaN."""
    d = 64
    offset = _case(rng, (4, 8, d), np.float32, scale=1.0, offset=1e4)
    near_constant = _case(rng, (4, 8, d), np.float32, scale=3e-3, offset=100.0)
    near_constant["x"][0, :2] = np.float32(100.0)  # exactly constant rows: var = 0
    big_gamma = _case(rng, (4, 8, d), np.float32, gamma_scale=1e3, gamma_offset=0.0)
    tiny_gamma = _case(rng, (4, 8, d), np.float32, gamma_scale=1e-3, gamma_offset=0.0)
    cases = {"offset 1e4": offset, "near-constant rows": near_constant, "gamma ~ 1e3": big_gamma,
             "gamma ~ 1e-3": tiny_gamma}  # fmt: skip
    results = sandbox.run(driver.gradients, list(cases.values())).value
    for (label, case), got in zip(cases.items(), results, strict=True):
        _check(got, case, STABILITY_RTOL if label in ("offset 1e4", "near-constant rows") else RTOL[np.float32],
               f"float32 {label}")  # fmt: skip


def _framework_imports(folder: Path) -> dict[str, set[str]]:
    scan = scan_folder(folder)
    return {f: mods & AUTODIFF_FRAMEWORKS for f, mods in scan.imports.items() if mods & AUTODIFF_FRAMEWORKS}


def test_no_autodiff_frameworks(sandbox, submission, rng):
    """No torch, jax, tensorflow, autograd or other autodiff library anywhere: neither imported in any of the
    submission's .py files (even guarded by try/except, even only in a self-test) nor at run time."""
    found = _framework_imports(submission.challenge_dir(CHALLENGE))
    if found:
        wrong("autodiff framework imported: " + "; ".join(f"{f}: {', '.join(sorted(m))}" for f, m in found.items()))
    result = sandbox.run(driver.gradients, [_case(rng, (2, 3, 8), np.float64)])
    loaded = sorted(set(result.imports) & AUTODIFF_FRAMEWORKS)
    if loaded:
        wrong(f"autodiff framework imported at run time: {', '.join(loaded)}")
