"""Grading tests for the fuse prompt: a fused softmax + top-k CUDA kernel.

A .cu submission is graded as delivered. ``test_compiles`` needs only nvcc; every other test needs a CUDA
device: the driver builds the submission behind a generated C shim (its launcher, parameter roles and
supported K read from the source; see driver/llmc_drive_fuse.py) once per submission, then runs it through CuPy
on logits chosen here and returns the outputs for comparison with the float64 oracle.

Where the prompt misleads or is silent:
- "CUDA-like pseudocode" is allowed by the prompt but cannot be graded: a .cu file must compile and run.
  A .cu file that is really Markdown with code inside fails ``test_compiles`` (its extracted code is
  compiled too, for the message only) and every GPU test.
- "top-k probabilities (after softmax)" are entries of the softmax over the whole row of V logits, not a
  softmax renormalised over the k kept logits.
- No tie rule and no range of K are stated. Order among equal logits is never graded: inputs keep their
  k + 1 largest values per row strictly apart, and ``test_no_duplicate_indices`` (heavy ties) accepts any
  order among equal values. Tests use K values the submission's own instantiations or dispatch offer;
  ``test_large_vocab`` uses the largest one up to 256.
- "Do NOT materialize the full softmax" and "minimize global memory reads/writes" are graded as what can
  be observed: only the K outputs per row are written among the caller's buffers (guard bytes), the logits
  are left untouched, and the launcher allocates less device memory than a quarter of the logits (a V-sized
  scratch buffer is the materialised softmax by another name). Speed is measured by bench/fuse_bandwidth.py,
  not graded here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges.challenges.fuse.driver import llmc_drive_fuse as driver
from pytest_llmchallenges.challenges.fuse.oracle import edge_maxima, separated_logits, softmax, softmax_topk
from pytest_llmchallenges.grading import GradingFailure, wrong

CHALLENGE = "fuse"

# float32 logits, float64 oracle: a careful kernel (max subtracted, exp of x - m, float32 sums of at most a
# few hundred terms per thread before a tree) lands within ~2e-6 relative; the prompt's issue sets 1e-5.
PROB_RTOL = 1e-5
# A launcher may allocate a small workspace (split rows: splits * K candidates per row); a quarter of the
# logits is far above that and far below the V floats per row that a materialised softmax needs.
SCRATCH_FRACTION = 0.25
LARGEST_K_CANDIDATES = (256, 200, 128, 100, 64, 50, 32, 20, 16, 10, 8, 5, 4, 2, 1)

_BUILDS: dict[str, Any] = {}


def _built(sandbox: Any) -> dict:
    """The submission's shim library, built once per submission (a build failure is remembered too)."""
    key = str(Path(sandbox.challenge_dir).resolve())
    if key not in _BUILDS:
        try:
            _BUILDS[key] = sandbox.run(driver.build, timeout=600).value
        except GradingFailure as exc:
            _BUILDS[key] = exc
    got = _BUILDS[key]
    if isinstance(got, GradingFailure):
        raise GradingFailure(got.category, got.reason, got.detail)
    return got


def _pick_k(built: dict, want: int, v: int) -> int:
    """The K to test: ``want`` for a run-time K, else the largest supported K <= want (or the smallest)."""
    ks = built["launcher"]["ks"]
    if not ks:
        return min(want, v)
    fit = [k for k in ks if k <= min(want, v)]
    return max(fit) if fit else min(ks)


def _logits(rng: np.random.Generator, shape: tuple[int, ...], k: int, **kw: Any) -> np.ndarray:
    return edge_maxima(separated_logits(rng, shape, k, **kw))


def _run(sandbox: Any, built: dict, cases: list[dict], **kw: Any) -> list[dict]:
    return sandbox.run(driver.run_kernel_cases, built, cases, **kw).value


def _check_status(res: dict, label: str) -> None:
    """The launch succeeded, did not fault, and wrote every output entry (outputs start poisoned)."""
    if res.get("fault"):
        raise GradingFailure("crash", f"{label}: the kernel faulted: {res['sync_text']}")
    if res["status"] != 0:
        raise GradingFailure("error", f"{label}: the launcher returned {res['status_text']}")
    idx_missing, prob_missing = res["unwritten"]
    if idx_missing or prob_missing:
        total = res["idx"].size
        wrong(f"{label}: never written: {idx_missing} of {total} indices, {prob_missing} of {total} probabilities")


def _check_indices_valid(idx: np.ndarray, v: int, label: str) -> None:
    rows = idx.reshape(-1, idx.shape[-1])
    bad = (rows < 0) | (rows >= v)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        wrong(f"{label}: {int(bad.sum())} of {bad.size} indices outside [0, {v}) (row {r}, rank {j}: {rows[r, j]})")
    dup = [r for r, row in enumerate(rows) if np.unique(row).size != row.size]
    if dup:
        row = rows[dup[0]]
        vals, counts = np.unique(row, return_counts=True)
        wrong(f"{label}: duplicate indices in {len(dup)} rows (row {dup[0]}: {vals[counts > 1][:5].tolist()} repeated)")


def _check_probs(got: np.ndarray, expect: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(got)
    if bad.any():
        wrong(f"{label}: {int(bad.sum())} of {got.size} probabilities are NaN or inf")
    rel = np.abs(got - expect) / expect
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    if not rel[worst] <= PROB_RTOL:
        wrong(
            f"{label}: probabilities off by {rel[worst]:.3g} relative > {PROB_RTOL:g} (at {tuple(map(int, worst))}: "
            f"got {got[worst]:.8g}, softmax over the full row gives {expect[worst]:.8g})"
        )


def _check_exact(res: dict, logits: np.ndarray, k: int, label: str) -> None:
    """Indices in the oracle's order (inputs have no ties that matter), probabilities within PROB_RTOL."""
    label = f"{label} (B, T, V = {logits.shape}, K = {k})"
    _check_status(res, label)
    v = logits.shape[-1]
    idx, probs = res["idx"], res["probs"]
    _check_indices_valid(idx, v, label)
    ref_idx, ref_p = softmax_topk(logits, k)
    rows, ref_rows = idx.reshape(-1, k), ref_idx.reshape(-1, k)
    mismatch = np.flatnonzero((rows != ref_rows).any(axis=-1))
    if mismatch.size:
        r = int(mismatch[0])
        flat = logits.reshape(-1, v)[r]
        same_set = set(rows[r].tolist()) == set(ref_rows[r].tolist())
        j = int(np.flatnonzero(rows[r] != ref_rows[r])[0])
        wrong(
            f"{label}: {mismatch.size} of {rows.shape[0]} rows differ from the top-{k} "
            f"({'same indices, wrong order' if same_set else 'wrong indices'}); row {r}, rank {j}: got index "
            f"{rows[r, j]} (logit {flat[rows[r, j]]:.6g}), expected {ref_rows[r, j]} (logit {flat[ref_rows[r, j]]:.6g})"
        )
    _check_probs(probs, ref_p, label)


def _all_cases(sandbox: Any, built: dict, cases: list[tuple[np.ndarray, int]], label: str) -> list[dict]:
    results = _run(sandbox, built, [{"logits": x, "K": k} for x, k in cases])
    for (x, k), res in zip(cases, results, strict=False):
        _check_exact(res, x, k, label)
    if len(results) < len(cases):  # a fault stops the run; _check_exact has raised on it already
        raise GradingFailure("crash", f"{label}: the run stopped after case {len(results)}")
    return results


@pytest.mark.nvcc
def test_compiles(sandbox):
    """Every .cu file compiles unmodified with ``nvcc -std=c++17 -O3 -arch=sm_90 -c``. The prompt allows
    pseudocode; the grader cannot run it, so a file named .cu must be CUDA. The first errors are shown."""
    report = sandbox.run(driver.compile_check, "sm_90", timeout=600).value
    if "missing" in report:
        pytest.skip(report["missing"])
    units = report["units"]
    if not units:
        md = report["markdown_with_cuda"]
        raise GradingFailure(
            "compile",
            "no .cu file in the folder" + (f"; CUDA code only inside Markdown: {', '.join(md)}" if md else ""),
        )
    failed = [u for u in units if not u["ok"]]
    if failed:
        parts = []
        for u in failed:
            note = ""
            if u["markdown"]:
                extracted = "compiles" if u.get("extracted_ok") else "does not compile either"
                note = f" (the file is Markdown with code inside, not CUDA source; the extracted code {extracted})"
            parts.append(f"{u['file']}{note}:\n{u['errors']}")
        first = failed[0]["errors"].splitlines()[:3]
        md = [u["file"] for u in failed if u["markdown"]]
        raise GradingFailure(
            "compile",
            f"{len(failed)} of {len(units)} .cu files do not compile with nvcc -arch={report['arch']}"
            + (f" ({', '.join(md)}: Markdown with code inside)" if md else "")
            + ": "
            + " | ".join(line.strip() for line in first),
            "\n\n".join(parts),
        )


@pytest.mark.gpu
def test_topk_matches_oracle(sandbox, rng):
    """Indices (set and order) and full-row softmax probabilities of 8 rows of V = 32000, for a small, a
    middle and a large K among those the submission supports."""
    built = _built(sandbox)
    ks = sorted({_pick_k(built, want, 32000) for want in (1, 10, 50)})
    x = _logits(rng, (2, 4, 32000), max(ks))
    _all_cases(sandbox, built, [(x, k) for k in ks], "oracle")


@pytest.mark.gpu
def test_rows_not_multiple_of_8(sandbox, rng):
    """B * T = 15 rows (not a multiple of 8, nor of a warp) with an odd V: every row is computed."""
    built = _built(sandbox)
    k = _pick_k(built, 16, 32003)
    _all_cases(sandbox, built, [(_logits(rng, (3, 5, 32003), k), k)], "B*T = 15")


@pytest.mark.gpu
def test_small_vocab(sandbox, rng):
    """V < 256, i.e. fewer logits per row than a typical block has threads: V = 100 and V = 255."""
    built = _built(sandbox)
    cases = []
    for shape, want in (((2, 3, 100), 10), ((1, 7, 255), 50)):
        k = _pick_k(built, want, shape[-1])
        if k <= shape[-1]:
            cases.append((_logits(rng, shape, k), k))
    if not cases:
        pytest.skip(f"the submission supports no K <= 255 (K: {built['launcher']['ks']})")
    _all_cases(sandbox, built, cases, "small V")


@pytest.mark.gpu
def test_vocab_50257(sandbox, rng):
    """GPT-2's vocabulary: V = 50257 is odd, so rows after the first start at unaligned addresses."""
    built = _built(sandbox)
    k = _pick_k(built, 50, 50257)
    _all_cases(sandbox, built, [(_logits(rng, (2, 3, 50257), k), k)], "V = 50257")


@pytest.mark.gpu
def test_vocab_128256(sandbox, rng):
    """Llama 3's vocabulary: V = 128256 > 65536 (indices need more than 16 bits)."""
    built = _built(sandbox)
    k = _pick_k(built, 10, 128256)
    _all_cases(sandbox, built, [(_logits(rng, (1, 4, 128256), k), k)], "V = 128256")


@pytest.mark.gpu
def test_large_vocab(sandbox, rng):
    """V = 128256 with the largest K the submission supports (up to 256): its declared instantiations, or,
    for a run-time K, the largest of 256, 200, 128, ... that its launcher accepts without an error status."""
    built = _built(sandbox)
    ks = built["launcher"]["ks"]
    candidates = [max(k for k in ks if k <= 256)] if ks and min(ks) <= 256 else list(LARGEST_K_CANDIDATES)
    x = _logits(rng, (2, 2, 128256), candidates[0])
    results = _run(sandbox, built, [{"logits": x, "K": k} for k in candidates], stop_at_first_success=True)
    last = results[-1]
    if last.get("fault") or last["status"] != 0:
        _check_status(last, f"V = 128256 (tried K = {', '.join(str(r['K']) for r in results)})")
    _check_exact(last, x, last["K"], "V = 128256, largest K")


@pytest.mark.gpu
def test_large_logits_stable(sandbox, rng):
    """Rows offset by +90, -110, +200 and -200: exp(x) overflows or underflows in float32 unless the row
    maximum is subtracted (the prompt's "numerically stable (log-sum-exp)")."""
    built = _built(sandbox)
    k = _pick_k(built, 10, 50257)
    offsets = np.array([90.0, -110.0, 0.0, 200.0, -200.0, 40.0])
    _all_cases(sandbox, built, [(_logits(rng, (1, 6, 50257), k, offset=offsets), k)], "large logits")


@pytest.mark.gpu
def test_rows_independent(sandbox, rng):
    """Six rows with different offsets and spreads: each row's max and sum are its own (few rows, so a row
    is likely split across blocks and its partial statistics merged)."""
    built = _built(sandbox)
    k = _pick_k(built, 16, 50257)
    rows = [
        separated_logits(rng, (1, 50257), k, scale=s, offset=o)
        for s, o in ((0.5, 0.0), (3.0, 12.0), (1.0, -7.0), (2.0, 25.0), (4.0, 3.0), (0.25, -15.0))
    ]
    x = edge_maxima(np.concatenate(rows).reshape(2, 3, 50257))
    _all_cases(sandbox, built, [(x, k)], "rows with different statistics")


@pytest.mark.gpu
def test_no_duplicate_indices(sandbox, rng):
    """Ties everywhere (2000 distinct logits in a row of 50257, each about 25 times): K distinct indices per
    row whose logits are the K largest values (any order among equal values), probabilities right for the
    indices returned."""
    built = _built(sandbox)
    v = 50257
    k = _pick_k(built, 50, v)
    x = (rng.integers(0, 2000, size=(2, 3, v)) * 0.01).astype(np.float32)
    label = f"ties (B, T, V = {x.shape}, K = {k})"
    res = _run(sandbox, built, [{"logits": x, "K": k}])[0]
    _check_status(res, label)
    idx = res["idx"]
    _check_indices_valid(idx, v, label)
    rows = x.reshape(-1, v)
    got_vals = np.take_along_axis(rows, idx.reshape(-1, k), -1)
    want_vals = -np.sort(-rows, axis=-1)[:, :k]
    if not np.array_equal(np.sort(got_vals, axis=-1), np.sort(want_vals, axis=-1)):
        r = int(np.flatnonzero((np.sort(got_vals, -1) != np.sort(want_vals, -1)).any(-1))[0])
        wrong(f"{label}: row {r} returns logits {got_vals[r][:8].tolist()}..., not the {k} largest")
    if np.any(np.diff(got_vals, axis=-1) > 0):
        wrong(f"{label}: values not in descending order")
    p_ref = np.take_along_axis(softmax(rows), idx.reshape(-1, k), -1)
    _check_probs(res["probs"].reshape(-1, k), p_ref, label)


@pytest.mark.gpu
def test_writes_only_outputs(sandbox, rng, llm_note):
    """Nothing but the K outputs per row is written: guard bytes around exactly sized idx and probs stay
    intact, the logits are unchanged, and the launcher allocates less device memory than a quarter of the
    logits (the prompt's "do NOT materialize the full softmax matrix in global memory")."""
    built = _built(sandbox)
    k = _pick_k(built, 10, 50257)
    x = _logits(rng, (2, 4, 50257), k)
    label = f"(B, T, V = {x.shape}, K = {k})"
    res = _run(sandbox, built, [{"logits": x, "K": k}])[0]
    _check_status(res, label)
    if res["guard_damage"]:
        wrong(f"{label}: wrote outside idx [B*T*K] and probs [B*T*K]: {'; '.join(res['guard_damage'])}")
    if not res["logits_intact"]:
        wrong(f"{label}: the logits buffer was modified (softmax written in place?)")
    if built["alloc_tracked"]:
        limit = SCRATCH_FRACTION * x.nbytes
        if res["alloc_bytes"] > limit:
            wrong(
                f"{label}: the launcher allocated {res['alloc_bytes'] / 2**20:.2f} MiB of device memory, over "
                f"{SCRATCH_FRACTION:g} of the {x.nbytes / 2**20:.2f} MiB of logits: a materialised softmax"
            )
    else:
        llm_note("device allocations not counted: the submission does not build with the allocation counters")
    _check_exact(res, x, k, "writes only outputs")


@pytest.mark.gpu
def test_sanitizer_clean(sandbox):
    """compute-sanitizer memcheck and racecheck report nothing on a 3-row launch with V = 16411 (unaligned
    rows, a row split across blocks by a kernel that splits), outputs allocated at their exact size."""
    built = _built(sandbox)
    k = _pick_k(built, 20, 16411)
    report = sandbox.run(driver.sanitize, [1, 3, 16411], k, ["memcheck", "racecheck"], timeout=600).value
    if "missing" in report:
        pytest.skip(f"needs compute-sanitizer: {report['missing']}")
    for tool, category in (("memcheck", "crash"), ("racecheck", "wrong")):
        got = report[tool]
        if got["rc"] != 0:
            lines = [ln for ln in got["tail"].splitlines() if "=========" in ln or "status" in ln]
            raise GradingFailure(category, f"compute-sanitizer {tool} (exit {got['rc']})", "\n".join(lines[-30:]))
