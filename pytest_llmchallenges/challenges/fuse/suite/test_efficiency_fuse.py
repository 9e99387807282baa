"""Efficiency of fuse (never graded; needs a CUDA GPU): the kernel's achieved bandwidth (bytes of logits read
per second) as a fraction of the device's copy bandwidth measured in the same run, at 512 and 32 rows of
V=128256 and K = 1, 8, 64, and its speed-up over naive CuPy (softmax materialised, then argpartition).
Protocol: pytest_llmchallenges.efficiency; on the GPU each launch is timed by CUDA events after an L2 flush and
a device-wide sync, inside laps the grading side stamps itself. A fraction above 1 is above the hardware
ceiling: flagged suspicious. The first rows' top-K of every timed launch are checked against the logits.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.fuse.driver import llmc_perf_fuse as perf
from pytest_llmchallenges.challenges.fuse.suite.test_fuse import _built

CHALLENGE = "fuse"
pytestmark = [pytest.mark.perf, pytest.mark.gpu]

SPEC = {"rows": [512, 32], "ks": [1, 8, 64], "V": 128256}


def check(seed: int, out: list) -> None:
    import cupy as cp

    for res in out:
        if res["status"] != "ok" or "idx" not in res:
            continue
        rows, k = res["rows"], res["K"]
        x = (cp.random.default_rng(seed + rows).standard_normal((rows, SPEC["V"]), dtype=cp.float32) * 3)[:8].get()
        want = np.sort(np.argsort(-x, axis=1, kind="stable")[:, :k], axis=1)
        got = np.sort(np.asarray(res["idx"])[:, :k], axis=1)
        assert np.array_equal(got, want), f"rows={rows} K={k}: top-K indices of the timed launch are wrong"


def event_times(samples: eff.Samples) -> dict[tuple[int, int], list[float]]:
    """Event seconds per (rows, K); NotMeasured when a repetition's events add up to more than the lap that
    the grading process stamped around them (the events would then not be the driver's)."""
    found: dict[tuple[int, int], list[float]] = {}
    reps = [rep for call in samples.extras for rep in call["outputs"]]
    for rep, lap in zip(reps, samples.seconds, strict=True):
        if sum(r.get("event_s", 0.0) for r in rep) > lap:
            raise eff.NotMeasured("CUDA event times exceed the lap measured around them")
        for res in rep:
            if res.get("status") == "ok":
                found.setdefault((res["rows"], res["K"]), []).append(res["event_s"])
    return found


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be timed is skipped with why."""
    try:
        built = _built(sandbox)
    except Exception as exc:  # a build failure is the grading suite's verdict, not ours
        eff.not_measured(request.node, f"the kernel does not build ({exc})")
    arm = eff.Arm("kernel", perf.timed, (built, SPEC), check=check, keep_outputs=True)
    base = eff.Arm("naive", perf.baseline, (built, SPEC), trusted=True, keep_outputs=True)
    try:
        s = eff.measure(sandbox, [arm, base])
        kernel, naive = event_times(s["kernel"]), event_times(s["naive"])
    except eff.NotMeasured as exc:
        eff.not_measured(request.node, str(exc))
    copy_bw = statistics.median(e["copy_bytes_per_s"] for e in s["naive"].extras)
    figures: dict = {"copy_gb_per_s": round(copy_bw / 1e9, 1)}
    suspicious = False
    for (rows, k), times in sorted(kernel.items()):
        t = statistics.median(times)
        fraction = rows * SPEC["V"] * 4 / t / copy_bw
        suspicious |= fraction > 1.0
        figures[f"bw_fraction_{rows}x{k}"] = round(fraction, 3)
        figures[f"kernel_us_{rows}x{k}"] = round(t * 1e6, 1)
        if (rows, k) in naive:
            figures[f"vs_naive_{rows}x{k}"] = round(t / statistics.median(naive[(rows, k)]), 3)
    if not kernel:
        eff.not_measured(request.node, "no (rows, K) shape launched successfully")
    head = max(kernel, key=lambda rk: (rk[0], -rk[1]))
    share = figures[f"bw_fraction_{head[0]}x{head[1]}"]
    figures["summary"] = f"{100 * share:.0f}% of copy BW ({head[0]} rows, K={head[1]})"
    figures["suspicious"] = suspicious
    eff.record(request.node, figures)
