"""The fuse reference kernel (reference/fuse/*.cu), run on the CPU by the CUDA emulator in tests/cuda_emu.

CI has no GPU, so without this nothing would check the kernel's logic there. The unmodified .cu file is built
with g++ against a fake cuda_runtime.h (tests/cuda_emu/README.md), then checked against the float64 oracle:
the reference must pass every check, and every known-wrong mutant (tests/mutants/fuse.toml) must fail one.
The emulator's own semantics (shuffles, votes, barriers, fault reports) are pinned down by a self-test kernel.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import mutants as mutants_mod
from tests.cuda_emu.build import BuildError, build, compiler
from tests.cuda_emu.fuse import EmulatedFuse
from tests.cuda_emu.fuse_checks import failures

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ is not installed: the CUDA emulator cannot build")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference" / "fuse"
SELFTEST = REPO / "tests" / "cuda_emu" / "selftest"
MUTANTS = {m.name: m for m in mutants_mod.load("fuse")[0]}
# Every fuse mutant is caught here, even those the GPU suite needs nvcc or compute-sanitizer for:
# - does_not_compile: g++ rejects the same syntax error nvcc does (the build is the check);
# - v_sized_scratch: the emulator counts cudaMalloc bytes, as the GPU driver's allocation trackers do;
# - missing_barrier: emulated threads switch only at sync points, so without the barrier between bitonic stages
#   each thread runs all stages on data its peers have not sorted yet: the race always loses, deterministically.
NOT_CAUGHT: dict[str, str] = {}


@pytest.fixture(scope="session")
def emu_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cuda_emu")


@pytest.fixture(scope="session")
def reference(emu_out: Path) -> EmulatedFuse:
    return EmulatedFuse(build(REFERENCE, emu_out))


def test_reference_passes_every_check(reference: EmulatedFuse) -> None:
    found = failures(reference)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(set(MUTANTS) - set(NOT_CAUGHT)))
def test_mutant_is_caught(name: str, emu_out: Path, tmp_path: Path) -> None:
    source = mutants_mod.materialise(MUTANTS[name], tmp_path) / "fuse"
    try:
        lib = build(source, emu_out)
    except BuildError:
        assert MUTANTS[name].category == "compile", f"mutant {name} should build:\n{sys.exc_info()[1]}"
        return
    assert MUTANTS[name].category != "compile", f"mutant {name} built, but it is a compile error"
    assert failures(EmulatedFuse(lib), stop_at_first=True), f"mutant {name} ({MUTANTS[name].why}) passed every check"


# Wrong edits of the reference's own speed-ups, which the grading mutants above do not touch: each must fail an
# emulated check, which shows the checks reach those code paths (first-tile threshold, warp-aggregated appends,
# the two-buffer pipeline, the float pre-filter, the split choice). old -> new, why.
INTERNAL_MUTANTS: dict[str, tuple[str, str, str]] = {
    "seed_threshold_one_rank_too_high": (
        "select_threshold(scratch, kThreads, K, sh)",
        "select_threshold(scratch, kThreads, max(1, K - 1), sh)",
        "the first tile's threshold from the (K-1)-th thread maximum drops a key of the top K",
    ),
    "append_offset_off_by_one": (
        "int pos = base + end - count;",
        "int pos = base + end - count + (lane == 0);",
        "lane 0's keys shifted by one slot: one overwritten, one slot never written",
    ),
    "second_buffer_wrong_base": (
        "step(b, base + kTileVecs);",
        "step(b, base);",
        "the odd tiles' logits are given the even tiles' indices",
    ),
    "second_buffer_not_reloaded": (
        "load_tile(xv, base + 2 * kTileVecs, v_end, a);",
        "",
        "the pipeline's first buffer is never refilled: tile t + 2 is tile t again",
    ),
    "prefilter_strict": (
        "if (local_max >= tv) {",
        "if (local_max > tv) {",
        "a logit equal to the threshold's value but of lower index is never admitted",
    ),
    "ties_at_threshold_dropped": (
        "return (x > tv) | ((x == tv) & (make_key(x, index) >= threshold));",
        "return (x > tv);",
        "the float pre-test without the key comparison on equality",
    ),
    "tile_validity_off_by_one": (
        "return (j >> 2) * kThreads < room;",
        "return (j >> 2) * kThreads <= room;",
        "a float4 past the end of the part counted as a logit (as -inf, index past the row)",
    ),
    "never_split": (
        "if (rows <= 0 || 2LL * rows >= slots) return 1;",
        "return 1;",
        "few long rows left on one block each: the launcher must split them",
    ),
}


def _kernel_edit(name: str, old: str, new: str, why: str) -> mutants_mod.Mutant:
    """One exact edit of the reference kernel, applied (exactly once, or an error) by tests/mutants.py."""
    edit = {"file": "fused_softmax_topk.cu", "old": old, "new": new}
    return mutants_mod.Mutant("fuse", name, catches=[], category="wrong", why=why, edits=[edit])


@pytest.mark.parametrize("name", sorted(INTERNAL_MUTANTS))
def test_internal_mutant_is_caught(name: str, emu_out: Path, tmp_path: Path) -> None:
    old, new, why = INTERNAL_MUTANTS[name]
    source = mutants_mod.materialise(_kernel_edit(name, old, new, why), tmp_path) / "fuse"
    assert failures(EmulatedFuse(build(source, emu_out)), stop_at_first=True), f"{name} ({why}) passed every check"


# ---- AddressSanitizer ---------------------------------------------------------------------------------------

_ASAN_RUN = """
import sys
from pathlib import Path
from tests.cuda_emu.fuse import EmulatedFuse
from tests.cuda_emu.fuse_checks import failures
found = failures(EmulatedFuse(Path(sys.argv[1]), exact_logits=True))
print("\\n".join(found))
sys.exit(1 if found else 0)
"""


def _asan_run(lib: Path) -> subprocess.CompletedProcess[str]:
    runtime = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(runtime):
        pytest.skip("libasan is not installed for g++")
    env = dict(os.environ, LD_PRELOAD=runtime, ASAN_OPTIONS="detect_leaks=0", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", _ASAN_RUN, str(lib)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_reference_clean_under_asan_and_ubsan(emu_out: Path) -> None:
    """Every case again with AddressSanitizer and UBSan, the logits in exactly sized allocations."""
    proc = _asan_run(build(REFERENCE, emu_out, sanitize=True))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def test_asan_reports_a_read_past_the_logits(emu_out: Path, tmp_path: Path) -> None:
    """The sanitizer build is armed: a tail index off by one reads past the last row."""
    old = "at.id = head + 4 * nvec + (tid - head);"
    edit = _kernel_edit("tail_index_plus_one", old, old[:-1] + " + 1;", "reads one logit past the row's end")
    source = mutants_mod.materialise(edit, tmp_path) / "fuse"
    proc = _asan_run(build(source, emu_out, sanitize=True))
    assert "heap-buffer-overflow" in proc.stderr, proc.stderr[-3000:]


# ---- the emulator's own semantics ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def selftest(emu_out: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build(SELFTEST, emu_out)))
    lib.emu_selftest_intrinsics.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.emu_set_seed.argtypes = [ctypes.c_ulonglong]
    lib.emu_fault_message.restype = ctypes.c_char_p
    return lib


def _expected_intrinsics(width: int, n: int) -> np.ndarray:
    """What selftest.cu's intrinsics<width> writes, from CUDA's (PTX shfl.sync) definitions."""
    t = np.arange(n)
    lane, base = t & 31, t - (t & 31)
    seg = width - 1
    lo, hi = lane & ~seg, (lane & ~seg) | seg
    xor = lane ^ 5
    warp_any = np.array([int(37 in range(w, w + 32)) + 2 * int(5 not in range(w, w + 32)) for w in base])
    rows = [
        10 * (base + (lo | (3 & seg))),
        10 * np.where(lane - 1 >= lo, t - 1, t),
        10 * np.where(lane + 2 <= hi, t + 2, t),
        10 * np.where(xor <= hi, base + xor, t),
        np.full(n, sum(1 << b for b in range(0, 32, 3))),
        np.full(n, sum(range(32))),
        0xF << (4 * (lane // 4)),
        np.full(n, int((t % 5 == 0).sum())),
        10 * (n - 1 - t) + 10 * ((t + 1) % n),
        warp_any,
        np.full(n, 10 * (n - 1)),
    ]
    return np.stack(rows).astype(np.uint64)


@pytest.mark.parametrize(("width", "seed"), [(32, 0), (4, 0), (32, 5), (4, 9)])
def test_emulated_intrinsics(selftest: ctypes.CDLL, width: int, seed: int) -> None:
    n = 96
    out = np.zeros((11, n), dtype=np.uint64)
    selftest.emu_set_seed(seed)
    status = selftest.emu_selftest_intrinsics(width, out.ctypes.data, n)
    assert status == 0, selftest.emu_fault_message().decode()
    want = _expected_intrinsics(width, n)
    bad = np.argwhere(out != want)
    assert not bad.size, f"row {bad[0][0]}, thread {bad[0][1]}: {out[tuple(bad[0])]} != {want[tuple(bad[0])]}"


@pytest.mark.parametrize(
    ("which", "message"),
    [(0, "deadlock"), (1, "divergent barriers"), (2, "threads of the block exited"), (3, "not in the mask")],
    ids=["warp-op-after-exit", "divergent-barriers", "barrier-after-exit", "lane-outside-mask"],
)
def test_emulator_reports_cuda_bugs(selftest: ctypes.CDLL, which: int, message: str) -> None:
    status = selftest.emu_selftest_bug(which)
    text = selftest.emu_fault_message().decode()
    selftest.emu_clear_fault()
    assert status == 719, f"status {status}: {text}"  # cudaErrorLaunchFailure
    assert message in text, text
