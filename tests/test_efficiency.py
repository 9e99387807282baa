"""The efficiency protocol (pytest_llmchallenges.efficiency): statistics, laps stamped by the grading process,
checked outputs, and what a perf test's outcome means (measured and passed, or skipped with why; never failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.calls import CallResult, Sandbox
from pytest_llmchallenges.challenges.flash_attention.driver import llmc_perf_flash_attention as fa_perf
from pytest_llmchallenges.challenges.flash_attention.oracle import attention_forward
from pytest_llmchallenges.grading import assert_close

REPO = Path(__file__).resolve().parents[1]
SHAPE, TILE = [1, 1, 64, 16], 16

NAIVE = """
import numpy as np

def naive(Q, K, V, causal):
    s = Q @ K.swapaxes(-1, -2) / np.sqrt(Q.shape[-1])
    if causal:
        s = np.where(np.tri(Q.shape[-2], dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ V
"""
SLOW_LIAR = (
    NAIVE
    + """
import time
_sleep = time.sleep
time.perf_counter = lambda: 0.0   # a submission cannot stop the grading process's clock
time.monotonic = lambda: 0.0

def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    _sleep(0.05)
    return naive(Q, K, V, causal)
"""
)
WRONG = (
    NAIVE
    + """
def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    return naive(Q, K, V, not causal)
"""
)


def folder(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "flash_attention"
    path.mkdir(parents=True)
    (path / "flash.py").write_text(source)
    return path


def check(seed: int, out: np.ndarray) -> None:
    q, k, v = eff.seeded_normals(seed, SHAPE, 3)
    assert_close(out, attention_forward(q, k, v, True)[0], 1e-8, "O")


def arm(**kw) -> eff.Arm:
    return eff.Arm("sub", fa_perf.timed, (SHAPE, TILE, True), check=check, **kw)


def test_samples_statistics():
    s = eff.Samples(seconds=[1.0, 1.1, 0.9, 1.0, 1.0])
    assert s.median == 1.0
    assert s.spread == pytest.approx(0.0)
    assert 0 < s.rse < 0.05
    assert eff.Samples(seconds=[1.0]).rse == float("inf")


def test_laps_come_from_the_grading_process_marks():
    marks = [{"recv": 0.0, "go": 1.0, "peak": 0}, {"recv": 3.0, "go": 3.5, "peak": 300}]
    result = CallResult(value=None, seconds=0.0, marks=marks)
    assert eff.laps(result, 1, wall=5.0) == [(2.0, 300)]
    with pytest.raises(eff.NotMeasured, match="expected 4 timing marks"):
        eff.laps(result, 2, wall=5.0)
    with pytest.raises(eff.NotMeasured, match="more than the call's wall time"):
        eff.laps(result, 1, wall=1.0)


def test_a_patched_clock_in_the_child_changes_nothing(tmp_path):
    """The submission sleeps 50 ms per call and replaces time.perf_counter/monotonic: every lap still shows
    the 50 ms, because the grading process stamps the marks with its own clock."""
    sandbox = Sandbox("flash_attention", folder(tmp_path, SLOW_LIAR), 30.0)
    samples = eff.Samples()
    eff.run_arm(sandbox, arm(), eff.fresh_seeds(3), samples, memory=True)
    assert len(samples.seconds) == 3
    assert all(0.05 <= s < 2.0 for s in samples.seconds), samples.seconds
    assert samples.memory_peak is not None


def test_a_wrong_timed_output_is_not_measured(tmp_path):
    """Outputs of timed runs are checked: a wrong one means no figure (a skip), never a correctness verdict."""
    sandbox = Sandbox("flash_attention", folder(tmp_path, WRONG), 30.0)
    with pytest.raises(eff.NotMeasured, match="timed run's output is wrong"):
        eff.run_arm(sandbox, arm(), eff.fresh_seeds(2), eff.Samples())


def test_measure_interleaves_and_reaches_min_reps(tmp_path):
    sandbox = Sandbox("flash_attention", folder(tmp_path, SLOW_LIAR.replace("_sleep(0.05)", "pass")), 30.0)
    base = eff.Arm("base", fa_perf.baseline, (SHAPE, TILE, True), trusted=True)
    got = eff.measure(sandbox, [arm(), base], reps_per_call=3, max_rounds=2, budget_s=0.0)
    assert {k: len(v.seconds) for k, v in got.items()} == {"sub": 6, "base": 6}


def test_speedup_flag():
    assert not eff.speedup_check(None, arm(), 0.5)  # type: ignore[arg-type]  (no re-check below 10x)
    assert not eff.speedup_check(None, arm(), 0.0)  # type: ignore[arg-type]


def run_pytest(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--llm-reference", "-p", "no:xdist", "-q", "-rs", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_perf_marker_selects_and_fast_skips():
    """`-m perf` selects exactly the efficiency tests, `-m "not perf"` none of them; --llm-fast skips them."""
    perf = run_pytest("--collect-only", "-m", "perf")
    assert perf.returncode == 0, perf.stdout[-2000:]
    ids = [ln for ln in perf.stdout.splitlines() if "::" in ln]
    assert ids and all("test_efficiency_" in ln for ln in ids), ids
    rest = run_pytest("--collect-only", "-m", "not perf")
    assert not [ln for ln in rest.stdout.splitlines() if "test_efficiency_" in ln]
    fast = run_pytest("-m", "perf", "--llm-fast", "-k", "dflash or kv")
    assert "efficiency not measured (--llm-fast)" in fast.stdout and "2 skipped" in fast.stdout, fast.stdout[-2000:]


def test_submission_calls_are_limited_by_the_baselines(tmp_path, monkeypatch):
    """A submission far slower than its baseline is cut off at a limit derived from the baseline's calls in the
    same run, and the skip reason says so (limits shrunk here so that the test stays fast)."""
    monkeypatch.setattr(eff, "LIMIT_FACTOR", 2.0)
    monkeypatch.setattr(eff, "MIN_LIMIT_S", 0.2)
    sandbox = Sandbox("flash_attention", folder(tmp_path, SLOW_LIAR.replace("0.05", "1.0")), 30.0)
    base = eff.Arm("base", fa_perf.baseline, (SHAPE, TILE, True), trusted=True)
    with pytest.raises(eff.NotMeasured, match=r"\[timeout\].*limit: 2x the baseline's call"):
        eff.measure(sandbox, [arm(), base], reps_per_call=3, max_rounds=2)


def test_perf_marker_is_registered(pytester: pytest.Pytester):
    pytester.makepyfile("import pytest\n\n@pytest.mark.perf\ndef test_ok():\n    pass\n")
    pytester.runpytest("--strict-markers", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_too_fast_is_rechecked_and_flagged(tmp_path, monkeypatch):
    """Faster than SUSPICIOUS_SPEEDUP x the baseline: run again on fresh inputs (outputs checked) and flagged;
    the threshold is lowered here so that an honest answer crosses it."""
    monkeypatch.setattr(eff, "SUSPICIOUS_SPEEDUP", 0.5)
    sandbox = Sandbox("flash_attention", folder(tmp_path, SLOW_LIAR.replace("_sleep(0.05)", "pass")), 30.0)
    assert eff.speedup_check(sandbox, arm(), 1.0)
    wrong = Sandbox("flash_attention", folder(tmp_path / "w", WRONG), 30.0)
    with pytest.raises(eff.NotMeasured, match="wrong"):
        eff.speedup_check(wrong, arm(), 1.0)
