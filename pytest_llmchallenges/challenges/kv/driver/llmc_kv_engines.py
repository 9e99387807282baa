"""Engines: one adapter interface (prefill / decode / extend on one layer) over each shape of kv answer.

- ``OpCalls``: module and functional answers, callables taking x (+ lengths/mask, cache, layer, weights...);
  their cache is passed in, kept inside, or returned anew (``CacheHolder`` passes a returned state back).
- ``CacheOps``: a cache class plus attention callables over it, a writer (q, k, v, cache) and/or a reader
  (q, cache) run after the cache's own update; the driver projects whatever the answer's functions do not.

Outputs are read back as (B, T, D) whatever layout the answer returns (``as_btd``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import parameters, qualified_name

    from .llmc_kv_bind import NAMES, ConfigMaker, annotation_of, call, param_for, takes
    from .llmc_kv_weights import Setup, plain
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import parameters, qualified_name  # type: ignore[no-redef]
    from llmc_kv_bind import NAMES, ConfigMaker, annotation_of, call, param_for, takes  # type: ignore[no-redef]
    from llmc_kv_weights import Setup, plain  # type: ignore[no-redef]

ADVANCE = r"^(advance|commit|increment|advance_?lengths|step_?done|finish_?step)$"


class Unsupported(Exception):
    """The submission's API has no way to do this operation (e.g. append several tokens at once)."""


def as_btd(out: Any, setup: Setup, steps: int, what: str) -> np.ndarray:
    """The submission's output as (B, T, D): accepts (B, T, D), (B, D) for T = 1, (B, H, T, Dh), (B, T, H, Dh),
    or a list of per-sequence (n_b, D) arrays."""
    b, h, dh, d = setup.batch, setup.num_heads, setup.head_dim, setup.d_model
    if isinstance(out, (list, tuple)) and len(out) == b and all(np.ndim(o) == 2 for o in out):
        padded = np.zeros((b, steps, d))
        for i, o in enumerate(out):
            arr = Answer.array(o, what)
            if arr.shape[1] != d or arr.shape[0] > steps:
                raise InterfaceError(f"{what}: sequence {i} output has shape {arr.shape}")
            padded[i, : arr.shape[0]] = arr
        return padded
    arr = np.asarray(Answer.array(plain(out), what), dtype=np.float64)
    if arr.shape == (b, steps, d):
        return arr
    if steps == 1 and arr.shape == (b, d):
        return arr[:, None, :]
    if arr.shape == (b, h, steps, dh):
        return arr.transpose(0, 2, 1, 3).reshape(b, steps, d)
    if arr.shape == (b, steps, h, dh):
        return arr.reshape(b, steps, d)
    if steps == 1 and arr.shape == (b, h, dh):
        return arr.reshape(b, 1, d)
    raise InterfaceError(f"{what}: output of shape {arr.shape}; expected (B, T, D) = {(b, steps, d)} or per-head")


def split_output(out: Any, setup: Setup) -> tuple[Any, Any]:
    """(output, new cache or None) from what an op returned."""
    if isinstance(out, dict):
        key = next((k for k in out if isinstance(k, str) and re.search(r"^(out|y|output|attn|h|hidden|o)", k)), None)
        if key is None:
            raise InterfaceError(f"returned a dict without an output entry: {sorted(map(str, out))}")
        rest = next((v for k, v in out.items() if isinstance(k, str) and re.search(NAMES["cache"], k)), None)
        return out[key], rest
    if isinstance(out, tuple) and len(out) >= 2 and not (len(out) == setup.batch and all(np.ndim(o) == 2 for o in out)):
        return out[0], (out[1] if len(out) == 2 else out[1:])
    return out, None


class Engine:
    """Runs prefill / decode / extend on one layer through some shape of answer (set by subclasses).

    ``layers``: the weights the answer computes with (the grader's, or those it created); ``x_scale``: the
    factor applied to inputs so that read weights give O(1) attention scores; ``projects`` whether the
    answer projects k and v itself; ``ragged``: how per-sequence lengths reach it (None: they cannot)."""

    description = ""
    projects = True
    owned = False
    ragged: str | None = None

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.layers = [dict(w) for w in setup.weights]
        self.x_scale = 1.0
        self.lengths = np.zeros((setup.num_layers, setup.batch), dtype=np.int64)
        self.ever_ragged = False

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extend(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise Unsupported("no operation appends several tokens to a non-empty cache")

    def end_step(self) -> None:
        """After every layer ran one op: lets caches with an explicit advance() move on."""

    def _note(self, layer: int, new: np.ndarray) -> np.ndarray:
        """Positions before this op (the write offsets); records the new totals."""
        before = self.lengths[layer].copy()
        self.lengths[layer] = before + new
        self.ever_ragged = self.ever_ragged or len(set(self.lengths[layer].tolist())) > 1
        return before


class CacheHolder:
    """The cache objects an API wants: made by the class its parameter names (or the first cache class),
    one shared with a layer index or one per layer; or, for a cache parameter defaulting to None with no
    such class, none at first and whatever the answer returns afterwards (``none_first``; when the answer
    then returns no state, ``kept_nothing`` says so and the cache class is tried instead)."""

    def __init__(self, sub: Answer, setup: Setup, op: Any, none_first: bool = True) -> None:
        self.sub, self.setup = sub, setup
        self.factory: Any = None
        self.adopted = False
        param = param_for(op, "cache")
        self.as_dict = param is not None and bool(re.search(r"\bdict\b", annotation_of(param).lower()))
        named = annotation_of(param) if param is not None else ""
        found = sub.candidates("cache") + sub.candidates("init_cache")
        by_name = [c for c in found if named and re.search(rf"\b{re.escape(c.name)}\b", named)]
        if by_name:
            self.factory = by_name[0].load()
        elif found and not (none_first and param is not None and param.default is None):
            self.factory = found[0].load()
        self.alternative = bool(found) and self.factory is None
        self.shared = self.factory is not None and takes(op, "layer")
        self.caches: list[Any] = []

    def make(self) -> None:
        n = 1 if self.shared else self.setup.num_layers
        layers = self.setup.num_layers if self.shared else 1
        pool = dict(self.setup.sizes(layers))
        pool["config"] = ConfigMaker(self.sub, pool)
        self.caches = [call(self.sub, self.factory, pool) if self.factory is not None else None for _ in range(n)]

    def get(self, layer: int) -> Any:
        return self.caches[0 if self.shared else layer]

    def adopt(self, layer: int, state: Any) -> None:
        """A returned cache replaces the one passed (functional APIs, or the same cache type)."""
        current = self.get(layer)
        if self.factory is not None and type(state) is not type(current):
            return
        if self.as_dict and not isinstance(state, dict):
            state = {layer: state}
        self.caches[0 if self.shared else layer] = state
        self.adopted = True

    @property
    def kept_nothing(self) -> bool:
        return self.alternative and not self.adopted

    def advance(self) -> None:
        for cache in self.caches:
            method = next((getattr(cache, n) for n in dir(cache) if re.search(ADVANCE, n.lower())), None)
            if method is not None and callable(method) and not [p for p in parameters(method) if p.default is p.empty]:
                self.sub.call(method)


class OpCalls(Engine):
    """Module and functional answers: callables taking x (+ lengths/mask, cache, layer, weights...)."""

    def __init__(self, sub: Answer, setup: Setup, ops: dict[str, list[Any]], caches: CacheHolder | None,
                 description: str, decode_2d: bool = True) -> None:  # fmt: skip
        super().__init__(setup)
        self.sub, self.ops, self.caches = sub, ops, caches
        self.description = description
        self.decode_2d = decode_2d
        first = (ops.get("prefill") or ops["generic"])[0]
        ways = [c for c in ("lengths", "mask", "positions") if takes(first, c)]
        self.ragged = ways[0] if ways else None

    def _pool(self, layer: int, x: np.ndarray, lengths: np.ndarray | None, before: np.ndarray) -> dict[str, Any]:
        pool: dict[str, Any] = dict(self.setup.sizes())
        pool.update(self.setup.counted(layer))
        pool["params"] = self.setup.params_for(layer)
        pool["config"] = ConfigMaker(self.sub, self.setup.sizes())
        pool["x"] = x
        pool["layer"] = layer
        pool["positions"] = before
        if lengths is not None:
            pool["lengths"] = np.asarray(lengths, dtype=np.int64)
            pool["mask"] = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]
        if self.caches is not None:
            pool["cache"] = self.caches.get(layer)
        return pool

    def _run(self, kind: str, layer: int, x: np.ndarray, lengths: np.ndarray | None, steps: int) -> np.ndarray:
        fn = self.ops[kind][layer]
        before = self._note(layer, np.ones(self.setup.batch, np.int64) if lengths is None else lengths)
        out = call(self.sub, fn, self._pool(layer, x, lengths, before), ("x", "cache", "lengths", "layer"))
        out, new_cache = split_output(out, self.setup)
        if new_cache is not None and self.caches is not None:
            self.caches.adopt(layer, new_cache)
        return as_btd(out, self.setup, steps, f"{qualified_name(fn)} output")

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        kind = "prefill" if "prefill" in self.ops else "generic"
        return self._run(kind, layer, x, lengths, x.shape[1])

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        if "decode" in self.ops:
            arg = x if self.decode_2d else x[:, None, :]
            return self._run("decode", layer, arg, None, 1)[:, 0]
        lengths = np.ones(x.shape[0], dtype=np.int64)
        return self._run("generic", layer, x[:, None, :], lengths, 1)[:, 0]

    def extend(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if "generic" not in self.ops:
            raise Unsupported("the API has prefill and decode operations only")
        return self._run("generic", layer, x, lengths, x.shape[1])

    def end_step(self) -> None:
        if self.caches is not None:
            self.caches.advance()


def split_heads(t: np.ndarray, h: int, heads_first: bool) -> np.ndarray:
    b, steps, d = t.shape
    t = t.reshape(b, steps, h, d // h)
    return t.transpose(0, 2, 1, 3) if heads_first else t


class Attend:
    """One attention callable over a cache: module-level, or a method of the cache (``method`` set);
    ``documented`` when llmchallenge.toml names it (or the cache class whose method it is)."""

    def __init__(self, fn: Any, method: str | None = None, documented: bool = False) -> None:
        self.fn, self.method, self.documented = fn, method, documented
        self.writes = takes(fn, "k") and takes(fn, "v")
        self.projects = takes(fn, "wq") or takes(fn, "params")
        self.applies_wo = takes(fn, "wo") or takes(fn, "params")
        self.name = method or qualified_name(fn)

    def bound(self, cache: Any) -> Any:
        return getattr(cache, self.method) if self.method else self.fn


class CacheOps(Engine):
    """A cache object plus attention callables: a writer (q, k, v, cache) and/or a reader (q, cache) run
    after the cache's own update. The driver projects whatever the answer's functions do not."""

    def __init__(self, sub: Answer, setup: Setup, caches: CacheHolder, update: str | None, prefill: Attend,
                 decode: Attend) -> None:  # fmt: skip
        super().__init__(setup)
        self.sub, self.caches, self.update_name = sub, caches, update
        self.prefill_fn, self.decode_fn = prefill, decode
        self.projects = False  # the cache receives k and v projected once per token, by the driver
        self.heads_first = heads_first(caches.get(0), setup)
        cache_cls = type(caches.get(0)).__name__
        write = "" if decode.writes else f"{cache_cls}.{update} + "
        pair = decode.name if prefill is decode else f"{prefill.name} (prefill), {write}{decode.name} (decode)"
        self.description = f"cache {cache_cls}: {write if prefill is decode else ''}{pair}"
        upd = getattr(caches.get(0), update) if update else None
        ways = [c for c in ("lengths", "positions", "mask") if (upd is not None and takes(upd, c))]
        ways += [c for c in ("lengths", "mask") if takes(prefill.bound(caches.get(0)), c)]
        self.ragged = ways[0] if ways else None

    def _step(self, fn: Attend, layer: int, x: np.ndarray, new: np.ndarray) -> np.ndarray:
        w = self.setup.weights[layer]
        h = self.setup.num_heads
        before = self._note(layer, new)
        q, k, v = (split_heads(x @ w[n], h, self.heads_first) for n in ("wq", "wk", "wv"))
        cache = self.caches.get(layer)
        pool: dict[str, Any] = {"layer": layer, "positions": before, **self.setup.sizes()}
        pool.update({"k": k, "v": v, "lengths": new, "mask": np.arange(x.shape[1])[None, :] < new[:, None]})
        if not fn.writes:
            update = getattr(cache, self.update_name or "")  # readers are paired with caches that have one
            returned = call(self.sub, update, pool, ("k", "v", "lengths"))
            if isinstance(returned, tuple) and len(returned) >= 2:
                pool["k"], pool["v"] = returned[0], returned[1]
            # a reader's lengths are totals, passed only when they differ (its default: the whole cache)
            pool.pop("mask")
            if self.ever_ragged:
                pool["lengths"] = self.lengths[layer].copy()
            else:
                pool.pop("lengths")
        pool.update(self.setup.counted(layer))
        pool["params"] = self.setup.params_for(layer)
        pool.update({"q": x if fn.projects else q, "cache": cache})
        order = ("q", "cache", "k", "v", "lengths") if fn.writes else ("q", "cache", "lengths")
        out = call(self.sub, fn.bound(cache), pool, order)
        out, _ = split_output(out, self.setup)
        out = as_btd(out, self.setup, x.shape[1], f"{fn.name} output")
        return out if fn.applies_wo else out @ w["wo"]

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._step(self.prefill_fn, layer, x, np.asarray(lengths, np.int64))

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        return self._step(self.decode_fn, layer, x[:, None, :], np.ones(x.shape[0], dtype=np.int64))[:, 0]

    def extend(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if self.prefill_fn is not self.decode_fn:
            raise Unsupported(f"{self.prefill_fn.name} stores a prompt in an empty cache; decode takes one token")
        return self._step(self.decode_fn, layer, x, np.asarray(lengths, np.int64))

    def end_step(self) -> None:
        self.caches.advance()


def heads_first(cache: Any, setup: Setup) -> bool:
    """Layout of the cache's buffers: (B, H, T, Dh) unless a 4-D buffer puts the capacity axis before heads."""
    arrays = [v for v in vars(cache).values() if isinstance(v, np.ndarray)] if hasattr(cache, "__dict__") else []
    for lst in (v for v in vars(cache).values() if isinstance(v, list)) if hasattr(cache, "__dict__") else []:
        arrays += [a for a in lst if isinstance(a, np.ndarray)]
    for a in arrays:
        if a.ndim >= 4 and a.shape[-1] == setup.head_dim:
            if a.shape[-2] == setup.num_heads and a.shape[-3] == setup.capacity:
                return False
            if a.shape[-3] == setup.num_heads:
                return True
    return True
