"""Checks of an emulated fuse kernel against the float64 oracle: a list of failure strings, empty when it passes.

The cases are small (the emulator runs a block's 256 threads as fibers on one core) but cover what the GPU
suite (pytest_llmchallenges/challenges/fuse/suite/test_fuse.py) grades and more: tiny and odd V, tile edges, rows not a
multiple of 8, forced and automatic splits (both sides of choose_splits), misaligned rows and base pointers,
exact ties (the API's rule: descending value, then ascending index), -inf entries, large offsets, rows with
their own statistics, shuffled thread scheduling, guard bytes around outputs and workspace, argument checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pytest_llmchallenges.challenges.fuse.oracle import edge_maxima, separated_logits, softmax, topk_indices
from tests.cuda_emu.fuse import EmulatedFuse, FuseRun

PROB_RTOL = 1e-5  # as suites/test_fuse.py: float32 kernel against the float64 oracle
PROB_ATOL = 1e-37  # below float32's normal range an exact relative match cannot be asked for
SCRATCH_FRACTION = 0.25  # as suites/test_fuse.py: the launcher may not allocate a V-sized scratch copy
SUCCESS, INVALID_VALUE, MISALIGNED = 0, 1, 716


@dataclass
class Case:
    label: str
    logits: np.ndarray  # (rows, V) or (B, T, V) float32
    k: int
    splits: int | None = None  # None: the plain launcher picks; else launch_fused_softmax_topk_ex with this
    misalign: int = 0  # bytes the logits start past a 256-byte boundary
    sms: int = 132  # emulated GPU: SM count and resident blocks per SM (choose_splits reads both)
    blocks_per_sm: int = 4
    seed: int = 0  # scheduling seed (0: threads resume in index order)
    launches: int | None = None  # kernel launches the call must make (1: one block per row, 2: split + merge)

    def describe(self) -> str:
        split = "auto" if self.splits is None else self.splits
        return f"{self.label} (shape {self.logits.shape}, K = {self.k}, splits {split}, seed {self.seed})"


def cases(rng: np.random.Generator) -> Iterator[Case]:
    """All cases, cheapest first (a mutant run stops at the first failure), built lazily."""

    def sep(shape: tuple[int, ...], k: int, **kw: object) -> np.ndarray:
        return edge_maxima(separated_logits(rng, shape, k, **kw))  # type: ignore[arg-type]

    for v, k, rows in ((1, 1, 3), (2, 1, 3), (2, 2, 3), (3, 2, 3), (3, 3, 1), (7, 7, 13), (7, 3, 13)):
        yield Case("tiny V", sep((rows, v), k), k)
    yield Case("V below the block size", sep((13, 100), 10), 10)
    yield Case("V below the block size", sep((3, 255), 64), 64)
    yield Case("K = 256 on a short row", sep((2, 300), 256), 256)
    yield Case("B*T = 15 rows", sep((3, 5, 1003), 16), 16)
    yield Case("one whole tile", sep((3, 4096), 8), 8)
    yield Case("a tile and one", sep((3, 4097), 1), 1)
    yield Case("a tile and one, base + 4 bytes", sep((3, 4097), 64), 64, misalign=4)
    for splits in (1, 2, 3, 7):
        yield Case("forced splits", sep((13, 5003), 10), 10, splits=splits)
    for k in (1, 2, 8, 64, 256):
        yield Case("K sweep", sep((3, 9001), k), k, splits=2)
    yield Case("forced splits, base + 8 bytes", sep((5, 5003), 10), 10, splits=3, misalign=8)
    ties = rng.integers(0, 40, size=(3, 5003)).astype(np.float32)
    for splits in (1, 3):
        yield Case("ties (exact order: ascending index)", ties, 64, splits=splits)
    flat = np.stack([np.zeros(4097), np.full(4097, 5.0)]).astype(np.float32)
    yield Case("all logits equal", flat, 10, splits=2)
    ninf = sep((3, 4097), 10)
    ninf[0, 5:] = -np.inf  # 5 finite logits, K = 10: the last five results are -inf, probability 0
    ninf[1, :4000] = -np.inf
    ninf[2, ::2] = -np.inf
    yield Case("-inf entries", ninf, 10)
    yield Case("-inf entries", ninf, 10, splits=3)
    offsets = np.array([90.0, -110.0, 0.0, 200.0, -200.0, 1e4])
    big = sep((6, 5003), 10, offset=offsets, gap=0.02)
    yield Case("large logits", big, 10)
    yield Case("large logits", big, 10, splits=3)
    spreads = ((0.5, 0.0), (3.0, 12.0), (1.0, -7.0), (2.0, 25.0), (4.0, 3.0), (0.25, -15.0))
    indep = edge_maxima(np.concatenate([separated_logits(rng, (1, 5003), 16, scale=s, offset=o) for s, o in spreads]))
    yield Case("rows independent", indep, 16, splits=3)
    yield Case("rows independent", indep, 16, splits=7)
    gpt2 = sep((3, 50257), 50)
    yield Case("V = 50257, GPU kept busy by splitting", gpt2, 50, launches=2)
    yield Case("V = 50257, one block per row", gpt2, 50, sms=1, blocks_per_sm=1, launches=1)
    yield Case("V = 50257, shuffled scheduling", gpt2, 50, splits=4, seed=3)
    for seed in (11, 12):
        yield Case("ties, shuffled scheduling", ties, 64, splits=3, seed=seed)
    yield Case("K sweep, shuffled scheduling", sep((2, 9001), 256), 256, splits=3, seed=5)
    yield Case("V = 128256, largest K", sep((1, 128256), 256), 256, launches=2)
    yield Case("V = 128256, one block per row", sep((2, 128256), 10), 10, sms=2, blocks_per_sm=1, launches=1)


def check(run: FuseRun, case: Case) -> list[str]:
    """Failures of one call: status, emulated faults, memory hygiene, exact indices, probabilities."""
    label = case.describe()
    if run.fault:
        return [f"{label}: emulated fault: {run.fault}"]
    if run.status != SUCCESS:
        return [f"{label}: the launcher returned {run.status}"]
    x = case.logits.reshape(-1, case.logits.shape[-1])
    out = []
    if run.unwritten != (0, 0):
        out.append(f"{label}: never written: {run.unwritten[0]} indices, {run.unwritten[1]} probabilities")
    if run.guard_damage:
        out.append(f"{label}: wrote outside its outputs: {'; '.join(run.guard_damage)}")
    if not run.logits_intact:
        out.append(f"{label}: the logits were modified")
    if case.launches is not None and run.launches != case.launches:
        out.append(f"{label}: {run.launches} kernel launches, expected {case.launches}")
    if case.splits is None and run.alloc_bytes > SCRATCH_FRACTION * x.nbytes:
        out.append(f"{label}: the launcher allocated {run.alloc_bytes} bytes (logits: {x.nbytes})")
    idx = run.idx
    if ((idx < 0) | (idx >= x.shape[1])).any():
        return [*out, f"{label}: indices outside [0, {x.shape[1]}): {idx[(idx < 0) | (idx >= x.shape[1])][:5]}"]
    dup = [r for r, row in enumerate(idx) if np.unique(row).size != row.size]
    if dup:
        out.append(f"{label}: duplicate indices in {len(dup)} rows (first: row {dup[0]})")
    want = topk_indices(x, case.k)
    bad = np.flatnonzero((idx != want).any(axis=1))
    if bad.size:
        r = int(bad[0])
        j = int(np.flatnonzero(idx[r] != want[r])[0])
        out.append(
            f"{label}: {bad.size} rows differ from the oracle; row {r}, rank {j}: got {idx[r, j]} "
            f"(logit {x[r, idx[r, j]]:.7g}), expected {want[r, j]} (logit {x[r, want[r, j]]:.7g})"
        )
    expect = np.take_along_axis(softmax(x), idx, axis=1)
    err = np.abs(run.probs - expect)
    off = ~(err <= PROB_RTOL * expect + PROB_ATOL)  # NaN counts as off
    if off.any():
        r, j = np.argwhere(off)[0]
        out.append(
            f"{label}: {int(off.sum())} probabilities off by more than {PROB_RTOL:g} relative; row {r}, rank {j}: "
            f"got {run.probs[r, j]:.8g}, softmax gives {expect[r, j]:.8g}"
        )
    return out


def argument_checks(fuse: EmulatedFuse) -> list[str]:
    """Status codes of calls the API rejects (or accepts as empty), without touching the outputs."""
    x = np.zeros(4096 + 64, dtype=np.float32)
    out_i, out_p = np.zeros(64, dtype=np.int32), np.zeros(64, dtype=np.float32)
    px, pi, pp = x.ctypes.data, out_i.ctypes.data, out_p.ctypes.data
    want = [
        ("K = 0", INVALID_VALUE, (px, pi, pp, 1, 1, 100, 0, None), False),
        ("K > V", INVALID_VALUE, (px, pi, pp, 1, 1, 5, 6, None), False),
        ("K = 257", INVALID_VALUE, (px, pi, pp, 1, 1, 1000, 257, None), False),
        ("V = 0", INVALID_VALUE, (px, pi, pp, 1, 1, 0, 1, None), False),
        ("B < 0", INVALID_VALUE, (px, pi, pp, -1, 1, 100, 1, None), False),
        ("B*T = 0", SUCCESS, (px, pi, pp, 0, 3, 100, 1, None), False),
        ("null logits", INVALID_VALUE, (None, pi, pp, 1, 100, 1, 1, None, 0, None), True),
        ("logits not 4-byte aligned", MISALIGNED, (px + 2, pi, pp, 1, 100, 1, 1, None, 0, None), True),
        ("splits 3 without a workspace", INVALID_VALUE, (px, pi, pp, 1, 4096, 1, 3, None, 0, None), True),
        ("workspace too small", INVALID_VALUE, (px, pi, pp, 1, 4096, 1, 3, px, 16, None), True),
    ]
    failures = []
    for label, status, args, ex in want:
        got = fuse.call_status(*args, ex=ex)
        if got != status:
            failures.append(f"arguments, {label}: the launcher returned {got}, expected {status}")
    if out_i.any() or out_p.any():
        failures.append("arguments: a rejected call wrote its outputs")
    return failures


def failures(fuse: EmulatedFuse, stop_at_first: bool = False, log: Callable[[str], None] | None = None) -> list[str]:
    """Every failure of the library on all cases, or (``stop_at_first``) those of the first failing case."""
    found = argument_checks(fuse)
    if found and stop_at_first:
        return found
    config = None
    for case in cases(np.random.default_rng(20240531)):
        if (case.sms, case.blocks_per_sm, case.seed) != config:
            fuse.configure(case.sms, case.blocks_per_sm, case.seed)
            config = (case.sms, case.blocks_per_sm, case.seed)
        got = check(fuse.run(case.logits, case.k, case.splits, case.misalign), case)
        if log is not None:
            log(f"{case.describe()}: {'ok' if not got else got[0]}")
        found += got
        if found and stop_at_first:
            break
    return found
