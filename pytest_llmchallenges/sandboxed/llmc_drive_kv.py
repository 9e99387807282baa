"""Driver for the kv challenge (KV cache for incremental decoding): adaptation only, no judging.

The prompt names no API, so the driver learns the submission's. It looks for three shapes of answer:

- *module*: an attention class built from projection weights (or holding its own, which the driver
  overwrites), with ``prefill``/``decode_step`` methods or one ``forward``, reading a cache object passed in,
  kept inside the module, or returned anew (``forward(x, cache) -> (out, cache)``);
- *functional*: module-level functions ``forward(x, params, cache) -> (out, new_cache)`` (or separate prefill
  and decode functions), with the cache made by an ``init_cache``-like function or a cache class;
- *cache ops*: a cache class with ``update(k, v[, lengths])`` and an attention function over the cache taking
  per-head queries; the driver then does the projections itself.

Arguments are bound by parameter name (x, lengths or mask, cache, layer, weights, sizes, a config object or a
params dict whose keys are read from the function's source). Every shape of answer is probed on a tiny
session first; the first that runs and returns outputs of the right shapes is used. Weights are symmetric,
so ``x @ W`` and ``x @ W.T`` conventions agree, and the output projection is the identity.

A session script (built by the grader) runs every op on every layer, each layer with its own inputs:
``{"op": "prefill" | "extend", "x": (L, B, T, D), "lengths": (B,)}`` and ``{"op": "decode", "x": (L, B, D)}``.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
from llmc_api import InterfaceError, Role, Submission, SubmissionError, split_arguments

ROLES = {
    "attention": Role(
        patterns=[r"attention", r"attn", r"^mha", r"(decoder|transformer)_?(layer|block)", r"layer$", r"model$"],
        kind="class",
        description="attention module class (prefill/decode or forward over a KV cache)",
    ),
    "cache": Role(
        patterns=[r"kv_?cache", r"cache", r"kv_?(store|buffer)"],
        kind="class",
        description="KV cache class",
    ),
    "config": Role(patterns=[r"config|cfg|settings|spec$"], kind="class", description="config class"),
    "step": Role(
        patterns=[
            r"(attention|attn|mha).*(forward|step|cached|incremental)",
            r"(cached|incremental|kv).*(attention|attn)",
            r"^(forward|attention_forward|attend|mha|multi_?head_?attention|attention)$",
            r"(forward|attention|attend)",
        ],
        kind="function",
        description="attention function over the cache",
    ),
    "prefill": Role(
        patterns=[r"prefill", r"(process|encode)_?prompt"], kind="function", description="prefill function"
    ),
    "decode": Role(patterns=[r"decode_?step", r"decode", r"generate_?step"], kind="function", description="decode"),
    "init_cache": Role(
        patterns=[r"(init|new|make|create|alloc|allocate|empty|build)_?(kv_?)?cache", r"cache_?(init|new|create)"],
        kind="function",
        description="function that creates an empty cache",
    ),
}

# concept -> pattern on lower-cased parameter names; the first matching concept wins, in this order
NAMES = {
    "num_layers": r"^(n_?layers?|num_?layers|layers|n_layer|nlayers)$",
    "num_heads": r"^(n_?heads?|num_?(attention_)?heads|heads|h|nh|n_?head|num_kv_heads|n_kv_heads)$",
    "head_dim": r"^(head_?dim|d_?head|d_?k|dh|head_?size|hd|d_?kv|dim_?head|d_h)$",
    "d_model": r"^(d_?model|dim|d|hidden(_size|_dim)?|embed_?dim|n_?embd|model_?dim|d_?emb|emb_?dim|hidden)$",
    "batch": r"^(batch(_size)?|b|bs|bsz|max_?batch(_size)?|n_?seqs?|num_?seq(uence)?s|max_?num_?seqs)$",
    "capacity": r"^(capacity|cap|max_?(seq(uence)?_?)?len(gth)?s?|max_?tokens|max_?pos(itions)?|max_?context"
    r"|context_?len(gth)?|block_?size|max_?t|max_?seq|seq_?len|max_?cache_?len|cache_?size|n_?ctx)$",
    "dtype": r"^dtype$",
    "layer": r"^(layer(_?idx|_?id|_?index|_?num|_?no)?|l|li|layer_i)$",
    "lengths": r"^(lengths?|lens|seq_?lens?|seqlens|seq_?lengths|prompt_?len(gth)?s|input_?len(gth)?s|n_?new"
    r"|num_?new(_tokens)?|n_?tokens|num_?tokens|valid_?len(gth)?s?|sequence_?lengths|context_?lens|new_?lens"
    r"|token_?counts?|counts)$",
    "mask": r"(mask|valid|attention_mask|pad)",
    "cache": r"(cache|^kv$|past|kv_?state|^state$|memory|^mem$)",
    "x": r"^(x|xs|x_?t|x_?new|new_?x|h|hidden_?states?|inputs?|input_?embeds?|emb|embeddings?|tokens?|x_?step"
    r"|token_?emb(edding)?s?|x_?in|new_?tokens?|prompt|prompts|prompt_?embeds?|x_?emb|seq|step_?input)$",
    "wq": r"^(w_?q|q_?(proj|w|weight)|w_?query|query_?(weight|proj)|wq)$",
    "wk": r"^(w_?k|k_?(proj|w|weight)|w_?key|key_?(weight|proj)|wk)$",
    "wv": r"^(w_?v|v_?(proj|w|weight)|w_?value|value_?(weight|proj)|wv)$",
    "wo": r"^(w_?o|o_?(proj|w|weight)|w_?out|out_?(proj|weight)|w_?proj|wo|c_?proj)$",
    "params": r"^(params|weights|p|w|layer_?params|attn_?params|parameters|layer_?weights|attn_?weights)$",
    "config": r"(config|cfg|conf|settings|spec)$",
    "q": r"^(q|query|queries|q_?new|q_?t|q_?step)$",
    "k": r"^(k|key|keys|k_?new|k_?t|new_?k)$",
    "v": r"^(v|value|values|v_?new|v_?t|new_?v)$",
}
_WEIGHT_ATTR = {
    "wq": r"^_?(w_?q|q_?proj(_weight)?|q_?weight|w_?query|query(_weight)?|wq)$",
    "wk": r"^_?(w_?k|k_?proj(_weight)?|k_?weight|w_?key|key(_weight)?|wk)$",
    "wv": r"^_?(w_?v|v_?proj(_weight)?|v_?weight|w_?value|value(_weight)?|wv)$",
    "wo": r"^_?(w_?o|o_?proj(_weight)?|o_?weight|w_?out|out_?proj(_weight)?|wo|w_?proj|c_?proj)$",
}
_BIAS_ATTR = r"^_?(b_?[qkvo]|[qkvo]_?(proj_)?bias|b_?(query|key|value|out))$"
_PREFILL = r"^(prefill|prefill_?\w*|process_?prompts?|encode_?prompts?|forward_?prompts?|prompt)$"
_DECODE = r"^(decode|decode_?step|step|generate_?step|decode_?one|next_?token|forward_?step|incremental|decode_?token)$"
_GENERIC = r"^(forward|__call__|call|attend|attention|extend|append|forward_?chunk|process|run)$"
_UPDATE = r"^(update|append|write|add|put|store|insert|push|extend|update_?cache|append_?kv)$"
_ADVANCE = r"^(advance|commit|increment|advance_?lengths|step_?done|finish_?step)$"


class Unsupported(Exception):
    """The submission's API has no way to do this operation (e.g. append several tokens at once)."""


def _params(fn: Any) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _concept(name: str) -> str | None:
    low = name.lower()
    return next((c for c, pat in NAMES.items() if re.search(pat, low)), None)


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))


def _required_unknown(fn: Any, known: set[str]) -> list[str]:
    return [p.name for p in _params(fn) if p.default is p.empty and _concept(p.name) not in known]


def _call(sub: Submission, fn: Any, pool: dict[str, Any], positional_order: tuple[str, ...] = ()) -> Any:
    """Call fn binding each parameter by the concept its name names; unknown required parameters take the
    unused concepts of ``positional_order``; absent optional ones keep their defaults."""
    args: dict[str, Any] = {}
    used: set[str] = set()
    unknown = []
    for p in _params(fn):
        c = _concept(p.name)
        if c == "params" and "params" in pool and callable(pool["params"]):
            args[p.name] = pool["params"](fn, p.name)
            used.add(c)
        elif c == "config" and "config" in pool and callable(pool["config"]):
            args[p.name] = pool["config"](fn, p)
            used.add(c)
        elif c is not None and c in pool and c not in used:
            args[p.name] = pool[c]
            used.add(c)
        elif p.default is p.empty:
            unknown.append(p)
    rest = [c for c in positional_order if c in pool and c not in used]
    for p in unknown:
        if not rest:
            raise InterfaceError(f"{_name(fn)}: cannot tell what to pass as its parameter {p.name!r}")
        args[p.name] = pool[rest.pop(0)]
    positional, keywords = split_arguments(_params(fn), args)
    return sub.call(fn, *positional, **keywords)


def _dict_keys_read(fn: Any, param: str) -> list[str]:
    """String keys the function's source reads from ``param`` (``params["Wq"]``, ``params.get("wq")``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    keys = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == param:
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                keys.append(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == param
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            keys.append(str(node.args[0].value))
    return keys


def _weight_key(key: str) -> str | None:
    low = key.lower()
    for concept, pat in _WEIGHT_ATTR.items():
        if re.search(pat, low):
            return concept
    if re.search(_BIAS_ATTR, low):
        return "bias"
    return None


class Setup:
    """Sizes and weights of one session, and the value pool that binding draws from."""

    def __init__(self, num_layers: int, batch: int, num_heads: int, d_model: int, capacity: int, weights: list) -> None:
        self.num_layers, self.batch, self.num_heads, self.d_model = num_layers, batch, num_heads, d_model
        self.head_dim = d_model // num_heads
        self.capacity = capacity
        self.weights = [{k: np.asarray(w[k], dtype=np.float64) for k in ("wq", "wk", "wv", "wo")} for w in weights]

    def sizes(self, layers: int | None = None) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers if layers is None else layers,
            "batch": self.batch,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "d_model": self.d_model,
            "capacity": self.capacity,
            "dtype": np.float64,
        }

    def params_for(self, layer: int) -> Callable[[Any, str], dict[str, Any]]:
        """A params dict with the keys the callee's source reads (``params["W_q"]``...)."""

        def make(fn: Any, name: str) -> dict[str, Any]:
            keys = _dict_keys_read(fn, name) or ["wq", "wk", "wv", "wo"]
            out: dict[str, Any] = {}
            for key in keys:
                concept = _weight_key(key)
                if concept == "bias":
                    out[key] = np.zeros(self.d_model)
                elif concept is not None:
                    out[key] = self.weights[layer][concept].copy()
            if not any(_weight_key(k) in ("wq", "wk", "wv") for k in out):
                raise InterfaceError(f"{_name(fn)}: cannot tell which keys its {name!r} dict needs (read: {keys})")
            return out

        return make


class ConfigMaker:
    """Builds the submission's config object for a parameter named config/cfg, from its class's fields."""

    def __init__(self, sub: Submission, sizes: dict[str, Any]) -> None:
        self.sub, self.sizes = sub, sizes

    def __call__(self, fn: Any, param: inspect.Parameter) -> Any:
        cls = param.annotation if inspect.isclass(param.annotation) else None
        if cls is None and isinstance(param.annotation, str):
            cls = next((c.load() for c in self.sub.candidates("config") if c.name == param.annotation), None)
        if cls is None:
            found = self.sub.candidates("config")
            if not found:
                raise InterfaceError(f"{_name(fn)} takes {param.name!r} but no config class was found")
            cls = found[0].load()
        return _call(self.sub, cls, dict(self.sizes))


def _as_btd(out: Any, setup: Setup, steps: int, what: str) -> np.ndarray:
    """The submission's output as (B, T, D): accepts (B, T, D), (B, D) for T = 1, (B, H, T, Dh), (B, T, H, Dh),
    or a list of per-sequence (n_b, D) arrays."""
    b, h, dh, d = setup.batch, setup.num_heads, setup.head_dim, setup.d_model
    if isinstance(out, (list, tuple)) and len(out) == b and all(np.ndim(o) == 2 for o in out):
        padded = np.zeros((b, steps, d))
        for i, o in enumerate(out):
            arr = Submission.array(o, what)
            if arr.shape[1] != d or arr.shape[0] > steps:
                raise InterfaceError(f"{what}: sequence {i} output has shape {arr.shape}")
            padded[i, : arr.shape[0]] = arr
        return padded
    arr = Submission.array(out, what)
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


def _split_output(out: Any, setup: Setup) -> tuple[Any, Any]:
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
    """Runs prefill / decode / extend on one layer through some shape of answer (set by subclasses)."""

    description = ""

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extend(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise Unsupported("no operation appends several tokens to a non-empty cache")

    def end_step(self) -> None:
        """After every layer ran one op: lets caches with an explicit advance() move on."""


class CacheHolder:
    """Creates the cache objects an API wants: one shared with a layer index, or one per layer."""

    def __init__(self, sub: Submission, setup: Setup, shared: bool) -> None:
        self.sub, self.setup, self.shared = sub, setup, shared
        self.caches: list[Any] = []
        self.factory: Any = None
        for role in ("cache", "init_cache"):
            found = sub.candidates(role)
            if found:
                self.factory = found[0].load()
                break

    def make(self) -> None:
        n = 1 if self.shared else self.setup.num_layers
        layers = self.setup.num_layers if self.shared else 1
        pool = dict(self.setup.sizes(layers))
        pool["config"] = ConfigMaker(self.sub, pool)
        self.caches = [_call(self.sub, self.factory, pool) if self.factory is not None else None for _ in range(n)]

    def get(self, layer: int) -> Any:
        return self.caches[0 if self.shared else layer]

    def set(self, layer: int, cache: Any) -> None:
        self.caches[0 if self.shared else layer] = cache

    def advance(self) -> None:
        for cache in self.caches:
            method = next((getattr(cache, n) for n in dir(cache) if re.search(_ADVANCE, n.lower())), None)
            if method is not None and callable(method) and not [p for p in _params(method) if p.default is p.empty]:
                self.sub.call(method)


def _inject_weights(obj: Any, weights: dict[str, np.ndarray], d_model: int) -> bool:
    """Overwrite the projection matrices an instance created itself; True if all of q, k, v were found."""
    if not hasattr(obj, "__dict__"):
        return False
    found: set[str] = set()
    containers = [vars(obj)] + [v for v in vars(obj).values() if isinstance(v, dict)]
    for attrs in containers:
        for name, value in list(attrs.items()):
            if not isinstance(name, str) or not isinstance(value, np.ndarray):
                continue
            concept = _weight_key(name)
            if concept in weights and value.shape == (d_model, d_model):
                attrs[name] = weights[concept].copy()
                found.add(concept)
            elif concept == "bias" and value.shape == (d_model,):
                attrs[name] = np.zeros(d_model)
            elif re.search(r"qkv|c_?attn|in_?proj", name.lower()) and value.shape in (
                (d_model, 3 * d_model),
                (3 * d_model, d_model),
            ):
                axis = 1 if value.shape == (d_model, 3 * d_model) else 0
                attrs[name] = np.concatenate([weights["wq"], weights["wk"], weights["wv"]], axis=axis)
                found.update(("wq", "wk", "wv"))
    return {"wq", "wk", "wv"} <= found


class OpCalls(Engine):
    """Module and functional answers: callables taking x (+ lengths/mask, cache, layer, weights...)."""

    def __init__(self, sub: Submission, setup: Setup, ops: dict[str, list[Any]], caches: CacheHolder | None,
                 description: str, decode_2d: bool = True) -> None:  # fmt: skip
        self.sub, self.setup, self.ops, self.caches = sub, setup, ops, caches
        self.description = description
        self.decode_2d = decode_2d
        self.started = [False] * setup.num_layers

    def _pool(self, layer: int, x: np.ndarray, lengths: np.ndarray | None) -> dict[str, Any]:
        pool: dict[str, Any] = dict(self.setup.sizes())
        pool.update(self.setup.weights[layer])
        pool["params"] = self.setup.params_for(layer)
        pool["config"] = ConfigMaker(self.sub, self.setup.sizes())
        pool["x"] = x
        pool["layer"] = layer
        if lengths is not None:
            pool["lengths"] = np.asarray(lengths, dtype=np.int64)
            pool["mask"] = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]
        if self.caches is not None:
            pool["cache"] = self.caches.get(layer)
        return pool

    def _run(self, kind: str, layer: int, x: np.ndarray, lengths: np.ndarray | None, steps: int) -> np.ndarray:
        fn = self.ops[kind][layer]
        out = _call(self.sub, fn, self._pool(layer, x, lengths), ("x", "cache", "lengths", "layer"))
        out, new_cache = _split_output(out, self.setup)
        # adopt a returned cache when the API is functional (no factory) or it returned its own cache type
        if (
            new_cache is not None
            and self.caches is not None
            and (self.caches.factory is None or type(new_cache) is type(self.caches.get(layer)))
        ):
            self.caches.set(layer, new_cache)
        return _as_btd(out, self.setup, steps, f"{_name(fn)} output")

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        kind = "prefill" if "prefill" in self.ops else "generic"
        self.started[layer] = True
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


def _split_heads(t: np.ndarray, h: int, heads_first: bool) -> np.ndarray:
    b, steps, d = t.shape
    t = t.reshape(b, steps, h, d // h)
    return t.transpose(0, 2, 1, 3) if heads_first else t


class CacheOps(Engine):
    """A cache with update(k, v[, lengths]) and an attention function taking per-head queries."""

    def __init__(self, sub: Submission, setup: Setup, caches: CacheHolder, update: str, attend: Any,
                 heads_first: bool) -> None:  # fmt: skip
        self.sub, self.setup, self.caches, self.update_name, self.attend = sub, setup, caches, update, attend
        self.heads_first = heads_first
        self.description = f"cache {type(caches.get(0)).__name__}.{update} + {_name(attend)} (driver projects)"

    def _step(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        w = self.setup.weights[layer]
        h = self.setup.num_heads
        q, k, v = (_split_heads(x @ w[n], h, self.heads_first) for n in ("wq", "wk", "wv"))
        cache = self.caches.get(layer)
        pool: dict[str, Any] = {"k": k, "v": v, "lengths": np.asarray(lengths, dtype=np.int64), "layer": layer}
        pool["mask"] = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]
        update = getattr(cache, self.update_name)
        returned = _call(self.sub, update, pool, ("k", "v", "lengths"))
        pool.update({"q": q, "cache": cache, **self.setup.sizes()})
        if isinstance(returned, tuple) and len(returned) >= 2:
            pool["k"], pool["v"] = returned[0], returned[1]
        out = _call(self.sub, self.attend, pool, ("q", "cache", "k", "v", "lengths"))
        out, _ = _split_output(out, self.setup)
        return _as_btd(out, self.setup, x.shape[1], f"{_name(self.attend)} output") @ w["wo"]

    def prefill(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._step(layer, x, lengths)

    def decode(self, layer: int, x: np.ndarray) -> np.ndarray:
        return self._step(layer, x[:, None, :], np.ones(x.shape[0], dtype=np.int64))[:, 0]

    def extend(self, layer: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._step(layer, x, lengths)

    def end_step(self) -> None:
        self.caches.advance()


def _methods(cls: type, pattern: str) -> list[str]:
    return [n for n in dir(cls) if re.search(pattern, n.lower()) and callable(getattr(cls, n, None))]


def _takes(fn: Any, concept: str) -> bool:
    return any(_concept(p.name) == concept for p in _params(fn))


def _module_engines(sub: Submission, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    for cand in sub.candidates("attention")[:4]:

        def make(cand: Any = cand) -> Engine:
            cls = cand.load()
            prefill = _methods(cls, _PREFILL)
            decode = _methods(cls, _DECODE)
            generic = [n for n in _methods(cls, _GENERIC) if n != "__call__" or "__call__" in vars(cls)]
            if not (generic or (prefill and decode)):
                raise InterfaceError(f"class {cls.__name__} has no prefill/decode or forward methods")
            instances = []
            for layer in range(setup.num_layers):
                pool: dict[str, Any] = dict(setup.sizes(1))
                pool.update(setup.weights[layer])
                pool["params"] = setup.params_for(layer)
                pool["config"] = ConfigMaker(sub, setup.sizes(1))
                pool["layer"] = layer
                obj = _call(sub, cls, pool)
                takes_weights = any(_concept(p.name) in ("wq", "params") for p in _params(cls))
                if not takes_weights and not _inject_weights(obj, setup.weights[layer], setup.d_model):
                    raise InterfaceError(f"{cls.__name__}: cannot find its projection weights to set them")
                instances.append(obj)
            chosen = {"prefill": prefill[:1], "decode": decode[:1]} if prefill and decode else {}
            if generic:
                chosen["generic"] = generic[:1]
            ops = {kind: [getattr(o, names[0]) for o in instances] for kind, names in chosen.items()}
            any_op = next(iter(ops.values()))[0]
            caches = None
            if _takes(any_op, "cache"):
                caches = CacheHolder(sub, setup, shared=_takes(any_op, "layer"))
                caches.make()
            methods = "/".join(names[0] for names in chosen.values())
            return OpCalls(sub, setup, ops, caches, f"class {cls.__name__} ({methods})")

        makers.append(make)
    return makers


def _function_engines(sub: Submission, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    prefill = [c for c in sub.candidates("prefill") if "." not in c.name][:1]
    decode = [c for c in sub.candidates("decode") if "." not in c.name][:1]
    steps = [c for c in sub.candidates("step") if "." not in c.name][:3]

    def make(generic: Any = None) -> Engine:
        ops: dict[str, list[Any]] = {}
        if prefill and decode:
            ops["prefill"] = [prefill[0].load()] * setup.num_layers
            ops["decode"] = [decode[0].load()] * setup.num_layers
        if generic is not None:
            fn = generic.load()
            if _takes(fn, "q") and not _takes(fn, "x"):
                raise InterfaceError(f"{_name(fn)} takes queries, not hidden states")
            ops["generic"] = [fn] * setup.num_layers
        if not ops:
            raise InterfaceError("no prefill/decode pair and no attention forward function")
        first = next(iter(ops.values()))[0]
        caches = None
        if _takes(first, "cache"):
            caches = CacheHolder(sub, setup, shared=_takes(first, "layer"))
            caches.make()
        names = ", ".join(_name(v[0]) for v in ops.values())
        return OpCalls(sub, setup, ops, caches, f"functions {names}")

    for generic in steps:
        makers.append(lambda g=generic: make(g))
    if prefill and decode:
        makers.append(lambda: make(None))
    return makers


def _cache_ops_engines(sub: Submission, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    attends = [c for c in sub.candidates("step") if "." not in c.name][:3]
    for cand in sub.candidates("cache")[:2]:
        for attend in attends:

            def make(cand: Any = cand, attend: Any = attend) -> Engine:
                cls = cand.load()
                update = _methods(cls, _UPDATE)
                if not update:
                    raise InterfaceError(f"class {cls.__name__} has no update/append method")
                fn = attend.load()
                if not _takes(fn, "q"):
                    raise InterfaceError(f"{_name(fn)} does not take queries")
                caches = CacheHolder(sub, setup, shared=_takes(getattr(cls, update[0]), "layer"))
                caches.factory = cls
                caches.make()
                return CacheOps(sub, setup, caches, update[0], fn, _heads_first(caches.get(0), setup))

            makers.append(make)
    return makers


def _heads_first(cache: Any, setup: Setup) -> bool:
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


def _probe(engine: Engine, setup: Setup) -> None:
    """A tiny ragged prefill and two decode steps on every layer; outputs must have the right shapes."""
    rng = np.random.default_rng(0)
    lengths = np.array([3, 1, 2][: setup.batch] + [1] * max(0, setup.batch - 3))
    for layer in range(setup.num_layers):
        engine.prefill(layer, rng.standard_normal((setup.batch, 3, setup.d_model)), lengths)
    engine.end_step()
    for _ in range(2):
        for layer in range(setup.num_layers):
            engine.decode(layer, rng.standard_normal((setup.batch, setup.d_model)))
        engine.end_step()


def _engine(sub: Submission, setup: Setup) -> Engine:
    """The first shape of answer that survives a probe session (with the session's own sizes)."""
    problems: list[str] = []
    raised: SubmissionError | None = None
    makers = _module_engines(sub, setup) + _function_engines(sub, setup) + _cache_ops_engines(sub, setup)
    for make in makers:
        for decode_2d in (True, False):  # a decode op taking x as (B, D), else as (B, 1, D)
            engine: Engine | None = None
            try:
                engine = make()
                if isinstance(engine, OpCalls):
                    engine.decode_2d = decode_2d
                elif not decode_2d:
                    break
                _probe(engine, setup)
            except SubmissionError as exc:
                problems.append(str(exc).splitlines()[0][:240])
                raised = raised or exc
            except (InterfaceError, Unsupported) as exc:
                problems.append(str(exc).splitlines()[0][:240])
            except Exception as exc:  # any failure means: not this convention
                problems.append(f"{type(exc).__name__}: {exc}"[:240])
            else:
                return make_fresh(make, decode_2d)
            if not isinstance(engine, OpCalls) or "decode" not in engine.ops:
                break
    if raised is not None:
        # The submission's own code ran and raised: report that (category error), not an interface mismatch
        raise SubmissionError(f"{raised} (while probing; tried: {'; '.join(problems[:4])})", raised.detail)
    hint = (
        'or name the parts: [roles] attention = "file.py:AttentionClass" (with prefill/decode_step or forward), '
        'cache = "file.py:CacheClass", step = "file.py:attention_forward", init_cache = "file.py:init_cache"'
    )
    raise sub.interface_error("attention", tried=problems[:8] or None, hint=hint)


def make_fresh(make: Callable[[], Engine], decode_2d: bool) -> Engine:
    """A new engine of the convention that passed the probe (the probe's caches are not reused)."""
    engine = make()
    if isinstance(engine, OpCalls):
        engine.decode_2d = decode_2d
    return engine


def session(sub: Submission, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a scripted session and return every op's outputs (zeros at padding positions).

    spec: num_heads, capacity, layers (list of {wq, wk, wv, wo}), ops (see the module docstring), and
    ``expect_error``: when set, an exception raised by the submission ends the session and is reported as
    ``{"error": {"op": index, "message": ...}}`` instead of failing the call. ``Unsupported`` ops (appending
    several tokens where the API cannot) are reported as ``{"unsupported": message}``.
    """
    first = np.asarray(spec["ops"][0]["x"])
    n_layers, batch, d_model = first.shape[0], first.shape[1], first.shape[-1]
    setup = Setup(n_layers, batch, int(spec["num_heads"]), d_model, int(spec["capacity"]), spec["layers"])
    engine = _engine(sub, setup)
    sub.ready()
    outputs: list[np.ndarray] = []
    result: dict[str, Any] = {"api": engine.description, "outputs": outputs}
    for index, op in enumerate(spec["ops"]):
        x = np.asarray(op["x"], dtype=np.float64)
        try:
            per_layer = []
            for layer in range(n_layers):
                if op["op"] == "decode":
                    per_layer.append(engine.decode(layer, x[layer]))
                else:
                    lengths = np.asarray(op["lengths"], dtype=np.int64)
                    run = engine.prefill if op["op"] == "prefill" else engine.extend
                    out = run(layer, x[layer], lengths)
                    out = np.where(np.arange(x.shape[2])[None, :, None] < lengths[:, None, None], out, 0.0)
                    per_layer.append(out)
            engine.end_step()
        except Unsupported as exc:
            result["unsupported"] = str(exc)
            return result
        except SubmissionError as exc:
            if not spec.get("expect_error"):
                raise
            result["error"] = {"op": index, "message": str(exc).splitlines()[0][:300]}
            return result
        outputs.append(np.stack(per_layer).astype(np.float64))
    return result
