"""Efficiency of kv (never graded): time per decode step after 256 and after 4096 tokens of history, their
growth ratio, and the cache's bytes per token; against a plain preallocated NumPy cache at 4096.
Protocol: pytest_llmchallenges.efficiency.

What the figures show: a cache that reuses past keys and values does O(T * d) work per step (attention over
the history), so its step time grows slowly with T; one that recomputes them does O(T * d^2) and grows about
as fast as T (16x here). Bytes per token are the slope of the cache's reachable numpy memory between the two
capacities (weights and other constants cancel); the ideal for this shape is 2 x 64 x 8 = 1024 (K and V,
float64). Shape: one layer, one sequence, 2 heads, d_model 64, 16 decode steps per lap: the prefill of 4096
tokens is outside the laps but not free, and a larger batch or more heads would only repeat it.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.kv.driver import llmc_perf_kv as perf
from pytest_llmchallenges.challenges.kv.oracle import attend
from pytest_llmchallenges.grading import assert_close

CHALLENGE = "kv"
pytestmark = pytest.mark.perf

D_MODEL, HEADS, BATCH, STEPS = 64, 2, 1, 16
SHORT, LONG = 256, 4096


def symmetric(rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((D_MODEL, D_MODEL))
    return (a + a.T) / np.sqrt(2 * D_MODEL) * 1.5


def make_spec(history: int) -> dict:
    rng = np.random.default_rng(secrets.randbits(31))
    weights = {"wq": symmetric(rng), "wk": symmetric(rng), "wv": symmetric(rng), "wo": np.eye(D_MODEL)}
    return {
        "num_heads": HEADS, "d_model": D_MODEL, "batch": BATCH, "steps": STEPS, "history": history,
        "prefill_seed": secrets.randbits(31), "weights": weights,
    }  # fmt: skip


def checker(spec: dict):
    """Decode outputs of a timed lap against attention over the whole history (prefill + earlier laps), with
    the weights the answer computed with (its own where it created them; either orientation, as test_kv reads
    them) and its input scale."""

    def inputs(seed: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((STEPS, BATCH, D_MODEL))

    def expected(out: dict, xs: np.ndarray, transpose: bool) -> np.ndarray:
        w, scale = out.get("layers") or spec["weights"], float(out.get("x_scale", 1.0))
        hist = np.random.default_rng(spec["prefill_seed"]).standard_normal((BATCH, spec["history"], D_MODEL))
        earlier = [inputs(s).transpose(1, 0, 2) for s in out["prior"]]
        tokens = np.concatenate([hist, *earlier, xs.transpose(1, 0, 2)], axis=1) * scale
        start = tokens.shape[1] - STEPS
        got = np.empty((STEPS, BATCH, D_MODEL))
        for t in range(STEPS):
            end = start + t + 1
            for b in range(BATCH):
                allowed = np.ones((1, end), dtype=bool)
                got[t, b] = attend(tokens[b, end - 1 : end], tokens[b, :end], w, HEADS, allowed, transpose)[0]
        return got

    def check(seed: int, out: dict) -> None:
        xs = inputs(seed)
        y = np.asarray(out["y"], np.float64)
        options = [expected(out, xs, transpose) for transpose in (False, True)]
        best = min(options, key=lambda e: float(np.max(np.abs(y - e))))
        assert_close(y, best, 1e-8, "timed decode outputs")

    return check


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be timed is skipped with why."""
    short, long = make_spec(SHORT), make_spec(LONG)
    arm = eff.Arm("h4096", perf.timed, (long,), check=checker(long))
    base = eff.Arm("numpy", perf.baseline, (long,), trusted=True)
    near = eff.Arm("h256", perf.timed, (short,), check=checker(short))
    s, figures = eff.versus(sandbox, request.node, arm, base, [near], label="NumPy cache")
    per_step = {name: s[name].median / STEPS for name in s}
    cache = {name: s[name].extras[0] for name in ("h256", "h4096")}
    slope = (cache["h4096"]["cache_bytes"] - cache["h256"]["cache_bytes"]) / (
        cache["h4096"]["capacity"] - cache["h256"]["capacity"]
    )
    growth = per_step["h4096"] / per_step["h256"]
    figures |= {
        "summary": f"{growth:.1f}x step time 256->4096, " + figures["summary"],
        "step_ms_256": round(1000 * per_step["h256"], 3),
        "step_ms_4096": round(1000 * per_step["h4096"], 3),
        "numpy_step_ms_4096": round(1000 * per_step["numpy"], 3),
        "growth_256_to_4096": round(growth, 2),
        "cache_bytes_per_token": round(slope, 1),
        "shape": "1 layer, B=1, 2 heads, d_model 64, float64 inputs, 16 decode steps per lap",
    }
    eff.record(request.node, figures)
