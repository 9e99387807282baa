"""Efficiency drivers for kv: time per decode step after a long history, and the cache's bytes per token.

One engine per call: the history (``history`` tokens per sequence, from ``spec["prefill_seed"]``) is prefilled
untimed, then each repetition decodes ``steps`` fresh tokens (from its seed) between two marks, so the history
grows by ``steps`` per repetition. A throwaway engine with a short history warms up first. The cache's size is
read by walking the objects the engine holds (numpy arrays reachable from it, weights included: the grading
side takes the slope between two capacities, which cancels what does not grow).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import mark

    from .llmc_kv_find import ROLES, find_engine
    from .llmc_kv_weights import Setup
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_kv_find import ROLES, find_engine  # type: ignore[no-redef]
    from llmc_kv_weights import Setup  # type: ignore[no-redef]
    from llmc_perf_common import mark  # type: ignore[no-redef]

__all__ = ["ROLES", "baseline", "reachable_bytes", "timed"]


def prefill_inputs(seed: int, batch: int, history: int, d_model: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, history, d_model))


def decode_inputs(seed: int, steps: int, batch: int, d_model: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((steps, batch, d_model))


def reachable_bytes(root: Any, depth: int = 8) -> int:
    """Bytes of the distinct numpy buffers reachable from ``root`` through attributes and containers."""
    seen: set[int] = set()
    buffers: dict[int, int] = {}
    stack = [(root, 0)]
    while stack:
        obj, level = stack.pop()
        if id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            buffers[id(base)] = base.nbytes
            continue
        if isinstance(obj, dict):
            items = list(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            items = list(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
            items = list(vars(obj).values())
        elif hasattr(obj, "__self__"):
            items = [obj.__self__]
        else:
            continue
        stack.extend((item, level + 1) for item in items)
    return sum(buffers.values())


def _session(engine: Any, spec: dict[str, Any], seeds: list[int], timed_run: bool) -> list[dict[str, Any]]:

    b, d, steps = spec["batch"], spec["d_model"], spec["steps"]
    scale = float(getattr(engine, "x_scale", 1.0))  # inputs scaled to the weights the answer created
    lengths = np.full(b, spec["history"], dtype=np.int64)
    engine.prefill(0, prefill_inputs(spec["prefill_seed"], b, spec["history"], d) * scale, lengths)
    engine.end_step()
    outputs = []
    for i, seed in enumerate(seeds):
        xs = decode_inputs(int(seed), steps, b, d) * scale
        if timed_run:
            mark_sub = spec["_sub"]
            mark(mark_sub)
        ys = []
        for t in range(steps):
            ys.append(np.asarray(engine.decode(0, xs[t]), dtype=np.float64))
            engine.end_step()
        if timed_run:
            mark(mark_sub)
        outputs.append({"y": np.stack(ys), "prior": [int(s) for s in seeds[:i]]})
    return outputs


def _setup(spec: dict[str, Any], history: int, reps: int) -> Setup:
    capacity = history + spec["steps"] * (reps + 1)
    return Setup(1, spec["batch"], spec["num_heads"], spec["d_model"], capacity, [spec["weights"]])


@entry
def timed(sub: Answer, seeds: list[int], spec: dict[str, Any]) -> dict[str, Any]:
    """Decode laps of the submission's cache after ``spec["history"]`` tokens; the cache's bytes."""
    warm = {**spec, "history": 8}
    _session(find_engine(sub, _setup(warm, 8, 1)), warm, [0], False)
    setup = _setup(spec, spec["history"], len(seeds))
    engine = find_engine(sub, setup)
    sub.ready()
    outputs = _session(engine, {**spec, "_sub": sub}, seeds, True)
    layer = {k: np.asarray(v, np.float64) for k, v in engine.layers[0].items()}  # the weights it computed with
    for out in outputs:
        out |= {"layers": layer, "x_scale": engine.x_scale}
    return {"outputs": outputs, "cache_bytes": reachable_bytes(engine), "capacity": setup.capacity}


@entry
def baseline(sub: Answer, seeds: list[int], spec: dict[str, Any]) -> dict[str, Any]:
    """The same laps on a plain preallocated NumPy cache (the submission is not imported)."""
    warm = {**spec, "history": 8}
    _session(CachedAttention(_setup(warm, 8, 1)), warm, [0], False)
    setup = _setup(spec, spec["history"], len(seeds))
    engine = CachedAttention(setup)
    _session(engine, {**spec, "_sub": sub}, seeds, True)
    return {"outputs": [None] * len(seeds), "cache_bytes": reachable_bytes(engine), "capacity": setup.capacity}


# The baseline: plain vectorised NumPy, what a competent answer written the simple way costs. It runs in
# the same kind of sandboxed child as the submission and never imports its code.


class CachedAttention:
    """A plain KV cache for one layer: preallocated (B, capacity, D) keys and values, one write per step,
    attention of the new token over the filled part (prefill only fills). Same conventions as the kv oracle
    (heads are consecutive slices, scale 1/sqrt(Dh), output @ wo). Used like the kv driver's engines."""

    def __init__(self, setup: Any) -> None:
        w = setup.weights[0]
        self.wq, self.wk, self.wv, self.wo = w["wq"], w["wk"], w["wv"], w["wo"]
        self.h, self.dh = setup.num_heads, setup.head_dim
        self.k = np.zeros((setup.batch, setup.capacity, setup.d_model))
        self.v = np.zeros_like(self.k)
        self.n = 0

    def _attend(self, q: np.ndarray, end: int) -> np.ndarray:
        b, t, d = q.shape
        qh = q.reshape(b, t, self.h, self.dh).transpose(0, 2, 1, 3)
        kh = self.k[:, :end].reshape(b, end, self.h, self.dh).transpose(0, 2, 3, 1)
        vh = self.v[:, :end].reshape(b, end, self.h, self.dh).transpose(0, 2, 1, 3)
        s = qh @ kh / np.sqrt(self.dh)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        o = (p / p.sum(axis=-1, keepdims=True)) @ vh
        return o.transpose(0, 2, 1, 3).reshape(b, t, d) @ self.wo

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> None:
        """Fills the cache only: the efficiency laps time decoding, not the prompt's outputs."""
        t = x.shape[1]
        self.k[:, :t], self.v[:, :t] = x @ self.wk, x @ self.wv
        self.n = t

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        self.k[:, self.n], self.v[:, self.n] = x @ self.wk, x @ self.wv
        self.n += 1
        return self._attend((x @ self.wq)[:, None], self.n)[:, 0]

    def end_step(self) -> None:
        pass
