"""The efficiency axis: how fast a correct answer is, measured under one protocol, never part of the grade.

Why a protocol and not a stopwatch: a timed figure is only citable if the submission cannot move it. So

- the clock is the grading process's: a driver marks the start and end of each repetition, the grading process
  stamps the mark when it reads it and releases the child only after stamping (``Sandbox`` records them), so
  patching ``time`` inside the child changes nothing; peak memory per repetition is read from /proc the same way;
- every timed repetition gets fresh inputs (seeds drawn here at run time, sent with the call) and its output is
  checked here against an oracle at places chosen after the output arrived, so work cannot be done ahead or
  replayed;
- the baseline (plain vectorised NumPy, ``baseline`` in a challenge's ``llmc_perf_<name>``) runs in the same kind
  of sandboxed child, in the same run, calls interleaved with the submission's (B A B A), each call after an
  untimed warm-up run;
  the submission's calls get a time limit derived from the baseline's (LIMIT_FACTOR x, at least MIN_LIMIT_S);
- at least ``MIN_REPS`` repetitions per arm, more rounds until the relative standard error of the mean is under
  ``RSE_TARGET`` or the time budget is spent; medians and the relative interquartile spread are reported;
- a submission more than ``SUSPICIOUS_SPEEDUP`` times faster than its baseline is re-checked on fresh inputs
  and flagged ``suspicious`` (shown for review, not trusted).

A perf test passes when it measured (its figures ride on the test report under ``EFFICIENCY_KEY``); when it
cannot measure (the submission failed, or a timed output was wrong) it is skipped with the reason. It never
fails: correctness is judged by the grading tests alone.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .calls import DEFAULT_MEMORY_LIMIT, CallResult, Sandbox
from .grading import GradingFailure

EFFICIENCY_KEY = "llm_efficiency"
MIN_REPS = 5
RSE_TARGET = 0.02
SUSPICIOUS_SPEEDUP = 10.0
REPS_PER_CALL = 3
MAX_ROUNDS = 4
# A submission's call may take this many times the baseline's call (at least MIN_LIMIT_S): a slow answer is
# a figure, but one that would hold the run for minutes is "not measured" with the limit and where it came from.
LIMIT_FACTOR = 20.0
MIN_LIMIT_S = 10.0


class NotMeasured(Exception):
    """The figure cannot be measured for this submission (the reason is shown as the perf test's skip)."""


@dataclass
class Arm:
    """One timed thing: a driver function called as ``fn(seeds, *args, **kwargs)``, one lap per seed: an
    ``@entry`` function of a challenge's ``llmc_perf_<name>`` (or, for one that declares none, its
    "llmc_perf_<name>:function" string).

    ``check(seed, output)`` raises AssertionError when the output of the timed repetition for ``seed`` is
    wrong. ``trusted`` arms are the grader's own baselines: never checked, never limited by the submission's
    limits; one that cannot run makes the figure "not measured" with the reason."""

    name: str
    function: str | Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    check: Callable[[int, Any], None] | None = None
    trusted: bool = False
    timeout: float | None = None
    memory: bool = False  # the first call adds a memory lap (llmc_perf_common.timed_reps)
    keep_outputs: bool = False  # keep the timed outputs in Samples.extras (figures read from them)


@dataclass
class Samples:
    """Per-repetition seconds and peak bytes (above the RSS at the start of the repetition) of one arm."""

    seconds: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    memory_peak: int | None = None
    call_seconds: list[float] = field(default_factory=list)  # wall time of each whole call, seen from outside
    extras: list[Any] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """Interquartile range over the median: the run-to-run spread a reader should expect."""
        if len(self.seconds) < 2:
            return 0.0
        q = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return (q[2] - q[0]) / self.median if self.median > 0 else 0.0

    @property
    def rse(self) -> float:
        """Relative standard error of the mean."""
        n = len(self.seconds)
        mean = statistics.fmean(self.seconds) if n else 0.0
        if n < 2 or mean <= 0:
            return math.inf
        return statistics.stdev(self.seconds) / math.sqrt(n) / mean


def fresh_seeds(n: int) -> list[int]:
    """Seeds nobody could know before the call: drawn from the OS at run time."""
    return [secrets.randbits(31) for _ in range(n)]


def laps(result: CallResult, count: int, wall: float) -> list[tuple[float, int]]:
    """(seconds, peak bytes) of each repetition from the grading process's own stamps of the driver's marks.

    A driver marks before and after each repetition; anything else (a submission writing marks of its own)
    shows up as a wrong count, and laps that add up to more than the call's outside wall time as a forgery."""
    marks = result.marks
    if len(marks) != 2 * count:
        raise NotMeasured(f"expected {2 * count} timing marks from the driver, got {len(marks)} (marks forged?)")
    out = []
    for start, end in zip(marks[0::2], marks[1::2], strict=True):
        out.append((end["recv"] - start["go"], max(0, int(end["peak"]))))
    if sum(s for s, _ in out) > wall + 0.05:
        raise NotMeasured("the timing marks add up to more than the call's wall time (marks forged?)")
    return out


def run_arm(
    sandbox: Sandbox, arm: Arm, seeds: list[int], samples: Samples, memory: bool = False, limit: float | None = None
) -> Any:
    """One call of ``arm`` timing one repetition per seed (and a memory lap); appends to ``samples``.
    ``limit``: a time limit derived from the baseline's call (see measure), else the arm's or the sandbox's."""
    start = time.perf_counter()
    kwargs = {**arm.kwargs, "memory": True} if memory else dict(arm.kwargs)
    if arm.trusted:  # a baseline needs what it needs (the naive attention holds N x N), whatever --llm-memory says
        kwargs["memory_limit"] = max(sandbox.memory_limit, DEFAULT_MEMORY_LIMIT)
    try:
        result = sandbox.run(arm.function, seeds, *arm.args, timeout=limit or arm.timeout, **kwargs)
    except GradingFailure as exc:
        if arm.trusted:  # not the submission's doing: no figure, and the reason says why
            raise NotMeasured(f"the baseline could not run here: [{exc.category}] {exc.reason}") from None
        why = ""
        if limit and exc.category == "timeout":
            why = f" (limit: {LIMIT_FACTOR:g}x the baseline's call in this run, at least {MIN_LIMIT_S:g} s)"
        raise NotMeasured(f"{arm.name}: [{exc.category}] {exc.reason}{why}") from None
    wall = time.perf_counter() - start
    samples.call_seconds.append(wall)
    value = result.value
    outputs = value.get("outputs") if isinstance(value, dict) else None
    if not isinstance(outputs, list) or len(outputs) != len(seeds):
        raise NotMeasured(f"{arm.name}: the driver returned no output per repetition")
    if arm.check is not None:
        for seed, out in zip(seeds, outputs, strict=True):
            try:
                arm.check(seed, out)
            except AssertionError as exc:
                if arm.trusted:
                    raise
                raise NotMeasured(f"{arm.name}: a timed run's output is wrong ({str(exc).splitlines()[0]})") from None
    measured = laps(result, len(seeds) + memory, wall)
    if memory:
        samples.memory_peak = measured.pop()[1]
    for seconds, peak in measured:
        samples.seconds.append(seconds)
        samples.peaks.append(peak)
    samples.extras.append({k: v for k, v in value.items() if arm.keep_outputs or k != "outputs"})
    return value


def measure(
    sandbox: Sandbox,
    arms: Sequence[Arm],
    *,
    reps_per_call: int = REPS_PER_CALL,
    min_reps: int = MIN_REPS,
    max_rounds: int = MAX_ROUNDS,
    budget_s: float = 4.0,
) -> dict[str, Samples]:
    """Interleave the arms' calls (B A B A ...) until every arm has ``min_reps`` repetitions and a relative
    standard error under RSE_TARGET, or ``max_rounds`` rounds ran, or the budget is spent after ``min_reps``.

    Baselines (trusted arms) go first in each round, so that the submission's calls get a time limit derived
    from the baseline's: LIMIT_FACTOR times its slowest call so far, at least MIN_LIMIT_S."""
    samples = {arm.name: Samples() for arm in arms}
    ordered = [a for a in arms if a.trusted] + [a for a in arms if not a.trusted]
    start = time.perf_counter()
    for round_ in range(max_rounds):
        for arm in ordered:
            base = [t for a in arms if a.trusted for t in samples[a.name].call_seconds]
            limit = None if arm.trusted or not base else max(MIN_LIMIT_S, LIMIT_FACTOR * max(base))
            seeds = fresh_seeds(reps_per_call)
            run_arm(sandbox, arm, seeds, samples[arm.name], arm.memory and round_ == 0, limit)
        enough = all(len(s.seconds) >= min_reps for s in samples.values())
        if enough and all(s.rse < RSE_TARGET for s in samples.values()):
            break
        if enough and time.perf_counter() - start > budget_s:
            break
    return samples


def speedup_check(sandbox: Sandbox, arm: Arm, ratio: float) -> bool:
    """True (suspicious) when the arm ran more than SUSPICIOUS_SPEEDUP x faster than its baseline; it is then
    run again on fresh inputs with outputs checked, so that a wrong fast answer is not measured at all."""
    if ratio <= 0 or 1.0 / ratio <= SUSPICIOUS_SPEEDUP:
        return False
    run_arm(sandbox, arm, fresh_seeds(MIN_REPS), Samples())
    return True


def figure(seconds: float) -> float:
    """Seconds rounded to 3 significant digits (figures are shown, not compared bit for bit)."""
    return float(f"{seconds:.3g}")


def timing_figures(prefix: str, s: Samples) -> dict[str, Any]:
    return {
        f"{prefix}_s": figure(s.median),
        f"{prefix}_spread": round(s.spread, 3),
        f"{prefix}_reps": len(s.seconds),
    }


def record(node: Any, figures: dict[str, Any]) -> None:
    """Attach the figures to the test report (the report's ``efficiency`` part, never its grade)."""
    node.user_properties.append((EFFICIENCY_KEY, figures))


def not_measured(node: Any, reason: str) -> None:
    """Record "n/a" with its reason and skip the perf test (it never fails)."""
    record(node, {"summary": "n/a", "reason": reason})
    pytest.skip(f"efficiency not measured: {reason}")


def ratio_summary(ratio: float, baseline: str) -> str:
    return f"{ratio:.2f}x {baseline}"


def seeded_normals(seed: int, shape: Sequence[int], count: int) -> list:
    """The inputs a perf driver builds from ``seed`` (llmc_drive_*.seeded_inputs: same generator, same order)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape)) for _ in range(count)]


def spot_rows(n: int, count: int) -> list[int]:
    """Rows to check, chosen after the output arrived (first and last always included)."""
    picked = {0, n - 1} | {secrets.randbelow(n) for _ in range(count)}
    return sorted(picked)


def versus(
    sandbox: Sandbox, node: Any, arm: Arm, base: Arm, others: Sequence[Arm] = (), label: str = "naive", **kw: Any
) -> tuple[dict[str, Samples], dict[str, Any]]:
    """Measure ``arm`` against its baseline ``base`` (and ``others``, interleaved with them) and the common
    figures: the summary "0.31x naive", the time ratio, ``suspicious``, median/spread/reps of every arm. Skips
    the test with the reason when the submission cannot be measured."""
    try:
        s = measure(sandbox, [arm, base, *others], **kw)
        ratio = s[arm.name].median / s[base.name].median
        suspicious = speedup_check(sandbox, arm, ratio)
    except NotMeasured as exc:
        not_measured(node, str(exc))
    figures: dict[str, Any] = {
        "summary": ratio_summary(ratio, label) + (" (suspicious)" if suspicious else ""),
        "vs_baseline": round(ratio, 3),
        "faster_than_baseline": ratio < 1.0,
        "suspicious": suspicious,
    }
    for a in (arm, base, *others):
        figures.update(timing_figures(a.name.replace("-", ""), s[a.name]))
    return s, figures


def attention_versus_naive(
    sandbox: Sandbox,
    node: Any,
    timed: Callable[..., Any],
    baseline: Callable[..., Any],
    args: tuple,
    checker: Any,
    nxn: int,
    shape: str,
) -> None:
    """flash_attention and its backward: the causal call of ``timed`` against the naive full-matrix
    ``baseline`` (both ``@entry`` functions of the challenge's perf driver), the non-causal call interleaved
    with them (skipped tiles), and peak memory as a fraction of one N x N."""
    causal = Arm("causal", timed, (*args, True), check=checker(True), memory=True)
    naive = Arm("naive", baseline, (*args, True), trusted=True, memory=True)
    full = Arm("noncausal", timed, (*args, False), check=checker(False))
    s, figures = versus(sandbox, node, causal, naive, [full])
    figures |= {
        "causal_over_noncausal": round(s["causal"].median / s["noncausal"].median, 3),
        "peak_nxn_fraction": round((s["causal"].memory_peak or 0) / nxn, 3),
        "naive_peak_nxn_fraction": round((s["naive"].memory_peak or 0) / nxn, 3),
        "shape": shape,
    }
    record(node, figures)
