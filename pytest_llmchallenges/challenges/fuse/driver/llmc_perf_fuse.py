"""Efficiency drivers for fuse (GPU): kernel time by CUDA events per (rows, K), after an L2 flush and a
device-wide sync, on fresh logits per repetition; the baseline child times naive CuPy (softmax materialised,
argpartition) and a 1 GiB device-to-device copy (the copy bandwidth the kernel is compared with).

Each repetition (one seed) is one lap between two marks; the events time each launch inside it, and the
grading side checks that their sum fits in the lap it stamped itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.fuse.driver.llmc_drive_fuse import ROLES
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_run import load_library
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import mark
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_drive_fuse import ROLES  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_fuse_run import load_library  # type: ignore[no-redef]
    from llmc_perf_common import mark  # type: ignore[no-redef]

__all__ = ["ROLES", "baseline", "timed"]

CHECK_ROWS = 8


def _logits(cp: Any, seed: int, rows: int, v: int) -> Any:
    return cp.random.default_rng(seed).standard_normal((rows, v), dtype=cp.float32) * 3


def _event_seconds(cp: Any, flush: Any, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of ``fn`` between two events, after overwriting the L2 cache and a device-wide sync."""
    flush.fill(0)
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    out = fn()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3, out


def _flush_buffer(cp: Any) -> Any:
    l2 = int(cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id).get("l2CacheSize", 64 << 20))
    return cp.empty(2 * l2 // 4 + 1, dtype=cp.float32)


def _laps(sub: Answer, seeds: list[int], spec: dict[str, Any], one: Callable[..., dict]) -> list[list[dict]]:
    import cupy as cp

    flush = _flush_buffer(cp)
    for rows in spec["rows"]:  # warm-up: one untimed run of every shape
        x = _logits(cp, 1, rows, spec["V"])
        for k in spec["ks"]:
            one(cp, flush, x, k)
    sub.ready()
    outputs = []
    for seed in seeds:
        xs = {rows: _logits(cp, int(seed) + rows, rows, spec["V"]) for rows in spec["rows"]}
        cp.cuda.Device().synchronize()
        mark(sub)
        outputs.append([{"rows": r, "K": k, **one(cp, flush, xs[r], k)} for r in spec["rows"] for k in spec["ks"]])
        mark(sub)
    return outputs


@entry
def timed(sub: Answer, seeds: list[int], built: dict, spec: dict[str, Any]) -> dict[str, Any]:
    """Per seed, per (rows, K): the kernel's event time, its status, and the first rows' top-K for a check."""
    lib = load_library(built)
    desc = built["launcher"]
    supported = desc.get("ks") or []

    def one(cp: Any, flush: Any, x: Any, k: int) -> dict:
        if supported and k not in supported:
            return {"status": "unsupported K"}
        idx = cp.empty((x.shape[0], k), dtype=desc["idx_dtype"])
        probs = cp.empty((x.shape[0], k), dtype=desc["prob_dtype"])

        def launch() -> int:
            rows, v = x.shape
            return int(lib.llmc_fuse_launch(x.data.ptr, idx.data.ptr, probs.data.ptr, 1, rows, v, k, None))

        seconds, status = _event_seconds(cp, flush, launch)
        if status or lib.llmc_fuse_sync():
            return {"status": f"launch status {status}"}
        return {"status": "ok", "event_s": seconds, "idx": idx[:CHECK_ROWS].get().astype(np.int64)}

    return {"outputs": _laps(sub, seeds, spec, one)}


def naive(cp: Any, x: Any, k: int) -> Any:
    """Softmax materialised in global memory, then argpartition and a sort of the k kept entries."""
    e = cp.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    part = cp.argpartition(-p, k - 1, axis=1)[:, :k]
    order = cp.argsort(-cp.take_along_axis(p, part, axis=1), axis=1)
    return cp.take_along_axis(part, order, axis=1)


@entry
def baseline(sub: Answer, seeds: list[int], built: dict, spec: dict[str, Any]) -> dict[str, Any]:
    """Naive CuPy per (rows, K) on the same kind of logits, and the device's copy bandwidth (bytes read +
    written per second by a 1 GiB device-to-device copy); the submission is not loaded."""
    import cupy as cp

    def one(cp: Any, flush: Any, x: Any, k: int) -> dict:
        seconds, _ = _event_seconds(cp, flush, lambda: naive(cp, x, k))
        return {"status": "ok", "event_s": seconds}

    outputs = _laps(sub, seeds, spec, one)
    n = 1 << 30
    src = cp.ones(n // 4, dtype=cp.float32)
    dst = cp.empty_like(src)
    flush = _flush_buffer(cp)
    copies = [_event_seconds(cp, flush, lambda: dst.data.copy_from_device_async(src.data, n))[0] for _ in range(5)]
    return {"outputs": outputs, "copy_bytes_per_s": 2 * n / float(np.median(copies))}
