"""Running a built shim library through ctypes and CuPy: one launch per case, on logits copied to the device
and outputs laid out in one arena of SENTINEL bytes with GUARD bytes around each output, so that unwritten
entries and writes outside the outputs both show. tests/cuda_emu lays its buffers out the same way.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_build import scratch_dir
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_shim import (
        BAD_RETURN,
        CXX_EXCEPTION,
        RETURNED_FALSE,
        UNSUPPORTED_K,
    )
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_fuse_build import scratch_dir  # type: ignore[no-redef]
    from llmc_fuse_shim import BAD_RETURN, CXX_EXCEPTION, RETURNED_FALSE, UNSUPPORTED_K  # type: ignore[no-redef]

GUARD = 256
SENTINEL = 0xA5


def load_library(built: dict) -> ctypes.CDLL:
    """The library bytes that build() returned, written to this call's temp folder and loaded."""
    path = scratch_dir() / "libllmc_fuse_run.so"
    path.write_bytes(np.asarray(built["so"], dtype=np.uint8).tobytes())
    lib = ctypes.CDLL(str(path))
    lib.llmc_fuse_launch.restype = ctypes.c_int
    lib.llmc_fuse_launch.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_void_p]
    lib.llmc_fuse_sync.restype = ctypes.c_int
    lib.llmc_error_name.restype = ctypes.c_char_p
    lib.llmc_error_name.argtypes = [ctypes.c_int]
    lib.llmc_message.restype = ctypes.c_char_p
    lib.llmc_alloc_bytes.restype = ctypes.c_ulonglong
    lib.llmc_alloc_calls.restype = ctypes.c_ulonglong
    return lib


def status_text(lib: ctypes.CDLL, code: int) -> str:
    """A status of llmc_fuse_launch or llmc_fuse_sync in words, for the verdict's message."""
    if code == UNSUPPORTED_K:
        return "this K is not among the launcher's instantiations"
    if code == CXX_EXCEPTION:
        return "the launcher threw: " + lib.llmc_message().decode(errors="replace")
    if code == RETURNED_FALSE:
        return "the launcher returned false"
    if code == BAD_RETURN:
        return "the launcher returned a value that is not a status"
    name = lib.llmc_error_name(code)
    return f"{code} ({name.decode() if name else 'not a CUDA error code'})"


def launch_one(lib: ctypes.CDLL, logits: np.ndarray, k: int, idx_dtype: str, prob_dtype: str) -> dict:
    """One launch on ``logits`` [B, T, V] with top ``k``: its status, outputs, unwritten entries, damaged
    guard bytes, whether the logits are intact and the bytes it allocated; after a fault only the status."""
    import cupy as cp

    b, t, v = logits.shape
    rows = b * t
    idx_bytes = rows * k * np.dtype(idx_dtype).itemsize
    prob_bytes = rows * k * np.dtype(prob_dtype).itemsize
    off_idx = GUARD
    off_probs = -(-(off_idx + idx_bytes + GUARD) // GUARD) * GUARD
    total = -(-(off_probs + prob_bytes + GUARD) // GUARD) * GUARD
    # Host-to-device copies only: no CuPy kernel, so nothing is compiled at run time in the child.
    d_logits = cp.asarray(logits)
    arena = cp.asarray(np.full(total, SENTINEL, dtype=np.uint8))  # guards around both outputs, outputs poisoned
    cp.cuda.Device().synchronize()
    alloc_before = lib.llmc_alloc_bytes()
    base = arena.data.ptr
    status = lib.llmc_fuse_launch(d_logits.data.ptr, base + off_idx, base + off_probs, b, t, v, k, None)
    sync = lib.llmc_fuse_sync()
    out: dict[str, Any] = {"K": k, "status": status, "status_text": status_text(lib, status) if status else ""}
    out["alloc_bytes"] = int(lib.llmc_alloc_bytes() - alloc_before)
    if sync != 0:  # a fault: the context is gone, nothing more can be read
        out.update(fault=True, sync=sync, sync_text=status_text(lib, sync))
        return out
    host = arena.get()
    guard = np.ones(total, dtype=bool)
    guard[off_idx : off_idx + idx_bytes] = False
    guard[off_probs : off_probs + prob_bytes] = False
    bad = np.flatnonzero(guard & (host != SENTINEL))
    regions = []
    for name, lo, hi in (("before idx", 0, off_idx), ("after idx", off_idx + idx_bytes, off_probs),
                         ("after probs", off_probs + prob_bytes, total)):  # fmt: skip
        hit = bad[(bad >= lo) & (bad < hi)]
        if hit.size:
            regions.append(f"{hit.size} guard bytes {name} (offsets {int(hit[0]) - lo}..{int(hit[-1]) - lo})")
    raw_idx = host[off_idx : off_idx + idx_bytes].reshape(rows * k, -1)
    raw_probs = host[off_probs : off_probs + prob_bytes].reshape(rows * k, -1)
    out["unwritten"] = [int((raw_idx == SENTINEL).all(axis=1).sum()), int((raw_probs == SENTINEL).all(axis=1).sum())]
    idx = host[off_idx : off_idx + idx_bytes].view(idx_dtype).reshape(b, t, k).astype(np.int64)
    probs = host[off_probs : off_probs + prob_bytes].view(prob_dtype).reshape(b, t, k).astype(np.float64)
    out.update(fault=False, idx=idx, probs=probs, guard_damage=regions)
    out["logits_intact"] = bool((d_logits.get() == logits).all())
    return out
