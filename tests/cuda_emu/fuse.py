"""ctypes driver for an emulated build of the fuse kernel (fused softmax + top-K, API in fused_softmax_topk.cuh).

Every call lays its buffers out the way the grading driver
(pytest_llmchallenges/challenges/fuse/driver/llmc_fuse_run.py)
does on a GPU: the outputs sit in one arena filled with SENTINEL bytes, with GUARD bytes around each, so that
unwritten outputs and writes outside them are both visible; the logits can start at any byte offset.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_run import GUARD, SENTINEL  # the grading driver's layout

MAX_DEVICES = 64  # the emulator's device count; each configure() moves to a fresh device ordinal


@dataclass
class FuseRun:
    """What one launcher call did."""

    status: int
    idx: np.ndarray  # (rows, K) int64
    probs: np.ndarray  # (rows, K) float64
    fault: str = ""  # the emulator's fault message (deadlock, divergent barrier, ...), "" if none
    guard_damage: list[str] = field(default_factory=list)
    unwritten: tuple[int, int] = (0, 0)  # output entries still holding SENTINEL bytes: (indices, probabilities)
    logits_intact: bool = True
    launches: int = 0  # kernel launches the call made
    alloc_bytes: int = 0  # bytes the call obtained from cudaMalloc


def _aligned(nbytes: int, offset: int = 0, fill: int = SENTINEL) -> tuple[np.ndarray, np.ndarray]:
    """(owner, view): a view of ``nbytes`` starting ``offset`` bytes past a 256-byte boundary."""
    owner = np.full(nbytes + 512 + offset, fill, dtype=np.uint8)
    start = (-owner.ctypes.data) % 256 + offset
    return owner, owner[start : start + nbytes]


def _guarded(sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    """A SENTINEL arena holding regions of the given sizes, each GUARD bytes away from the next and the ends."""
    offsets, pos = [], GUARD
    for size in sizes:
        offsets.append(pos)
        pos = -(-(pos + size + GUARD) // GUARD) * GUARD
    _, arena = _aligned(pos)
    return arena, offsets


def _damage(arena: np.ndarray, regions: list[tuple[str, int, int]]) -> list[str]:
    outside = np.ones(arena.size, dtype=bool)
    for _, lo, hi in regions:
        outside[lo:hi] = False
    bad = np.flatnonzero(outside & (arena != SENTINEL))
    return [f"{bad.size} guard bytes (first at arena offset {int(bad[0])})"] if bad.size else []


class EmulatedFuse:
    """The kernel library built by build.build(), with the emulator's controls."""

    def __init__(self, path: Path, exact_logits: bool = False) -> None:
        """``exact_logits``: put the logits in an allocation of exactly their size (plus ``misalign``) made by
        the library's malloc, so that an AddressSanitizer build reports a kernel reading past them."""
        lib = ctypes.CDLL(str(path))
        self.exact_logits = exact_logits
        p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        lib.launch_fused_softmax_topk.argtypes = [p, p, p, i, i, i, i, p]
        lib.launch_fused_softmax_topk_ex.argtypes = [p, p, p, i, i, i, i, p, sz, p]
        lib.fused_softmax_topk_choose_splits.argtypes = [i, i, i]
        lib.fused_softmax_topk_workspace_size.argtypes = [i, i, i]
        lib.fused_softmax_topk_workspace_size.restype = sz
        lib.emu_configure.argtypes = [i, i, i]
        lib.emu_set_seed.argtypes = [ctypes.c_ulonglong]
        lib.emu_fault_message.restype = ctypes.c_char_p
        lib.emu_stat.argtypes = [i]
        lib.emu_stat.restype = ctypes.c_ulonglong
        lib.emu_host_alloc.argtypes = [sz]
        lib.emu_host_alloc.restype = p
        lib.emu_host_free.argtypes = [p]
        self.lib = lib
        self._device = 0
        self.configure()

    def configure(self, sms: int = 132, blocks_per_sm: int = 4, seed: int = 0) -> None:
        """Emulated SM count and occupancy, reported to a fresh device ordinal (the library caches them per
        device), and the scheduling seed (0: threads resume in index order; else a seeded shuffle)."""
        if self._device >= MAX_DEVICES:
            raise RuntimeError(f"more than {MAX_DEVICES} emulated device configurations in one library")
        self.lib.emu_configure(self._device, sms, blocks_per_sm)
        self.lib.emu_set_seed(seed)
        self._device += 1

    def choose_splits(self, rows: int, v: int, k: int) -> int:
        return int(self.lib.fused_softmax_topk_choose_splits(rows, v, k))

    def workspace_size(self, rows: int, k: int, splits: int) -> int:
        return int(self.lib.fused_softmax_topk_workspace_size(rows, k, splits))

    def run(self, logits: np.ndarray, k: int, splits: int | None = None, misalign: int = 0) -> FuseRun:
        """One call: the plain launcher (``splits`` None; (B, T, V) logits give B and T) or the ``_ex`` one with
        its own exactly sized, guarded workspace. ``misalign`` bytes shift the logits off a 256-byte boundary."""
        x = np.ascontiguousarray(logits, dtype=np.float32)
        v = x.shape[-1]
        rows = x.size // v
        b, t = (x.shape[0], x.shape[1]) if x.ndim == 3 else (rows, 1)
        raw = None
        if self.exact_logits:  # malloc aligns to 16 bytes, and the logits end where the allocation does
            raw = self.lib.emu_host_alloc(x.nbytes + misalign)
            xbuf = np.ctypeslib.as_array((ctypes.c_uint8 * x.nbytes).from_address(raw + misalign))
        else:
            _, xbuf = _aligned(x.nbytes, misalign)
        xbuf[:] = x.reshape(-1).view(np.uint8)
        out_bytes = rows * k * 4
        arena, (off_idx, off_probs) = _guarded([out_bytes, out_bytes])
        base = arena.ctypes.data
        launches, allocs = self.lib.emu_stat(0), self.lib.emu_stat(3)
        ws_arena, ws_regions = None, []
        if splits is None:
            status = self.lib.launch_fused_softmax_topk(xbuf.ctypes.data, base + off_idx, base + off_probs, b, t, v, k,
                                                        None)  # fmt: skip
        else:
            ws_bytes = self.workspace_size(rows, k, splits)
            ws_arena, (off_ws,) = _guarded([ws_bytes])
            ws_regions = [("workspace", off_ws, off_ws + ws_bytes)]
            ws_ptr = ws_arena.ctypes.data + off_ws if ws_bytes else None
            status = self.lib.launch_fused_softmax_topk_ex(xbuf.ctypes.data, base + off_idx, base + off_probs, rows, v,
                                                           k, splits, ws_ptr, ws_bytes, None)  # fmt: skip
        fault = self.lib.emu_fault_message().decode()
        if fault:
            self.lib.emu_clear_fault()
        raw_idx = arena[off_idx : off_idx + out_bytes].reshape(-1, 4)
        raw_probs = arena[off_probs : off_probs + out_bytes].reshape(-1, 4)
        damage = _damage(arena, [("idx", off_idx, off_idx + out_bytes), ("probs", off_probs, off_probs + out_bytes)])
        if ws_arena is not None:
            damage += [f"workspace: {d}" for d in _damage(ws_arena, ws_regions)]
        intact = bool(np.array_equal(xbuf, x.reshape(-1).view(np.uint8)))
        if raw is not None:
            self.lib.emu_host_free(raw)
        return FuseRun(
            status=int(status),
            idx=raw_idx.reshape(-1).view(np.int32).reshape(rows, k).astype(np.int64),
            probs=raw_probs.reshape(-1).view(np.float32).reshape(rows, k).astype(np.float64),
            fault=fault,
            guard_damage=damage,
            unwritten=(int((raw_idx == SENTINEL).all(1).sum()), int((raw_probs == SENTINEL).all(1).sum())),
            logits_intact=intact,
            launches=int(self.lib.emu_stat(0) - launches),
            alloc_bytes=int(self.lib.emu_stat(3) - allocs),
        )

    def call_status(self, *args: object, ex: bool = False) -> int:
        """The launcher's status for raw arguments (argument validation tests); clears any fault."""
        fn = self.lib.launch_fused_softmax_topk_ex if ex else self.lib.launch_fused_softmax_topk
        status = int(fn(*args))
        self.lib.emu_clear_fault()
        return status
