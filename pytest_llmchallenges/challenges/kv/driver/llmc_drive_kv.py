"""Driver for the kv challenge (KV cache for incremental decoding): adaptation only, no judging.

The prompt names no API, so the driver learns the submission's, observing rather than imposing:

- *module*: an attention class with ``prefill``/``decode_step`` methods or one ``forward``. Weights it takes
  are the grader's; weights it creates itself are *read* (arrays named like ``W_q``/``q_proj`` or Linear-like
  objects with ``.weight``/``.bias``) and sent back, so that the oracle uses them. Its cache is passed in,
  kept inside, or returned anew (``forward(x, cache) -> (out, cache)``); a returned state is passed back next
  time, wrapped as ``{layer: state}`` when the cache parameter is annotated as a dict.
- *functional*: module-level functions over hidden states (``forward(x, params, cache) -> (out, cache)``).
- *cache + attention*: a cache class and attention functions over it (module-level, or the cache's own
  methods). A function taking q, k, v and the cache *writes* it (a prefill, or a write-and-attend step); one
  taking q and the cache *reads* it after the driver called the cache's ``update``/``append``. A function
  that also takes the projection weights projects itself and gets the hidden states as its "query".

Per-sequence lengths reach the answer the way its signatures say: new-token counts for operations that
write, totals for a reader's optional ``lengths`` (passed only once the batch is ragged: its default means
"the whole cache"), per-sequence write offsets for a ``positions`` parameter.

Every shape of answer is probed on a tiny session; a probe that raises is a failed guess, not the answer's
error (unless ``llmchallenge.toml`` names the roles). When nothing runs, the verdict lists what was tried
and the manifest lines that would settle it.

Projection work is observed, not timed: weight matrices handed to (or read from) the answer are counting
views (same values and dtype) that tally the vectors multiplied through them, so the grader can see whether
past tokens' keys and values are projected again at every step.

A session script (built by the grader) runs every op on every layer, each layer with its own inputs:
``{"op": "prefill" | "extend", "x": (L, B, T, D), "lengths": (B,)}`` and ``{"op": "decode", "x": (L, B, D)}``.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import llmc_scan
import numpy as np
from llmc_api import Answer, InterfaceError, Role, SubmissionError, split_arguments

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
    "seed": r"^(seed|random_?seed)$",
    "rng": r"^(rng|generator|random_?state)$",
    "scale": r"^(scale|sm_?scale|softmax_?scale|scaling)$",
    "layer": r"^(layer(_?idx|_?id|_?index|_?num|_?no)?|l|li|layer_i)$",
    "positions": r"^(positions?|pos|offsets?|write_?pos(itions)?|start_?pos(itions)?|cache_?pos(itions)?"
    r"|seq_?pos(itions)?|starts?)$",
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
    "wq": r"^_?(w_?q|q|to_?q|q_?(proj|linear|lin)(_weight)?|q_?weight|w_?query|query(_(weight|proj|linear))?|wq"
    r"|linear_?q)$",
    "wk": r"^_?(w_?k|k|to_?k|k_?(proj|linear|lin)(_weight)?|k_?weight|w_?key|key(_(weight|proj|linear))?|wk"
    r"|linear_?k)$",
    "wv": r"^_?(w_?v|v|to_?v|v_?(proj|linear|lin)(_weight)?|v_?weight|w_?value|value(_(weight|proj|linear))?|wv"
    r"|linear_?v)$",
    "wo": r"^_?(w_?o|to_?out|o_?(proj|linear|lin)(_weight)?|o_?weight|w_?out|out_?(proj|linear)(_weight)?|wo"
    r"|w_?proj|c_?proj|linear_?o)$",
}
_BIAS_ATTR = r"^_?(b_?([qkvo])|([qkvo])_?(proj_)?bias|b_?(query|key|value|out))$"
_BLOCK_ATTR = r"(norm|mlp|ffn|feed_?forward|^w_?(up|down|gate)$|^fc\d|^ln_?\d|^ln$)"
_PREFILL = r"^(prefill|prefill_?\w*|process_?prompts?|encode_?prompts?|forward_?prompts?|prompt)$"
_DECODE = r"^(decode|decode_?step|step|generate_?step|decode_?one|next_?token|forward_?step|incremental|decode_?token)$"
_GENERIC = r"^(forward|__call__|call|attend|attention|extend|append|forward_?chunk|process|run)$"
_UPDATE = r"^(update|append|write|add|put|store|insert|push|extend|update_?cache|append_?kv)$"
_ADVANCE = r"^(advance|commit|increment|advance_?lengths|step_?done|finish_?step)$"
_CACHE_ATTEND = r"(attend|attention|attn|forward|^__call__$)"
_WEIGHT_RMS = 1.5  # our weights' entries have rms 1.5 / sqrt(D): inputs are rescaled to that for read weights


class Unsupported(Exception):
    """The submission's API has no way to do this operation (e.g. append several tokens at once)."""


# -- observing projection work ------------------------------------------------------------------------------
TALLY: Counter = Counter()  # (layer, "wk" | "wv" | ...) -> vectors multiplied through that matrix


def _plain(value: Any) -> Any:
    if isinstance(value, Counted):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


class Counted(np.ndarray):
    """A weight matrix that counts the vectors multiplied through it; results are plain arrays."""

    key: Any = None

    def __array_finalize__(self, obj: Any) -> None:
        self.key = getattr(obj, "key", None)

    def _count(self, operands: Any) -> None:
        arrays = [o for o in operands if isinstance(o, np.ndarray)]
        for w in (o for o in arrays if isinstance(o, Counted) and o.key is not None and o.ndim >= 2):
            width = w.shape[-2]
            for other in arrays:
                if other is not w and not isinstance(other, Counted) and width and other.size % width == 0:
                    TALLY[w.key] += other.size // width

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if ufunc is np.matmul and method == "__call__":
            self._count(inputs)
        if "out" in kwargs:
            kwargs["out"] = _plain(kwargs["out"])
        return getattr(ufunc, method)(*_plain(inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in (np.dot, np.matmul, np.einsum, np.tensordot, np.inner, np.vdot):
            self._count(args)
        return func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})


def counted(w: np.ndarray, layer: int, concept: str) -> Counted:
    view = np.asarray(w).view(Counted)
    view.key = (layer, concept)
    return view


# -- binding arguments by name ------------------------------------------------------------------------------
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


def _annotation(p: inspect.Parameter) -> str:
    ann = p.annotation
    if ann is p.empty:
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def _call(sub: Answer, fn: Any, pool: dict[str, Any], positional_order: tuple[str, ...] = ()) -> Any:
    """Call fn binding each parameter by the concept its name names; unknown required parameters take the
    unused concepts of ``positional_order``; absent optional ones keep their defaults. A parameter annotated
    ``int`` never receives a per-sequence array."""
    args: dict[str, Any] = {}
    used: set[str] = set()
    unknown = []
    for p in _params(fn):
        c = _concept(p.name)
        if c in ("positions", "lengths") and re.fullmatch(r"(Optional\[)?int\]?( \| None)?", _annotation(p)):
            c = None
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


def _takes(fn: Any, concept: str) -> bool:
    return any(_concept(p.name) == concept for p in _params(fn))


def _param(fn: Any, concept: str) -> inspect.Parameter | None:
    return next((p for p in _params(fn) if _concept(p.name) == concept), None)


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
    m = re.search(_BIAS_ATTR, low)
    if m:
        letter = (m.group(2) or m.group(3) or m.group(5) or "o")[0]
        return "b" + letter
    return None


class Setup:
    """Sizes and the grader's weights of one session."""

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
            "scale": 1.0 / np.sqrt(self.head_dim),
            "seed": 0,
            "rng": np.random.default_rng(0),
        }

    def counted(self, layer: int) -> dict[str, Counted]:
        return {k: counted(w.copy(), layer, k) for k, w in self.weights[layer].items()}

    def params_for(self, layer: int) -> Callable[[Any, str], dict[str, Any]]:
        """A params dict with the keys the callee's source reads (``params["W_q"]``...)."""

        def make(fn: Any, name: str) -> dict[str, Any]:
            keys = _dict_keys_read(fn, name) or ["wq", "wk", "wv", "wo"]
            weights = self.counted(layer)
            out: dict[str, Any] = {}
            for key in keys:
                concept = _weight_key(key)
                if concept is not None and concept.startswith("b"):
                    out[key] = np.zeros(self.d_model)
                elif concept is not None:
                    out[key] = weights[concept]
            if not any(_weight_key(k) in ("wq", "wk", "wv") for k in out):
                raise InterfaceError(f"{_name(fn)}: cannot tell which keys its {name!r} dict needs (read: {keys})")
            return out

        return make


class ConfigMaker:
    """Builds the submission's config object for a parameter named config/cfg, from its class's fields."""

    def __init__(self, sub: Answer, sizes: dict[str, Any]) -> None:
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
            arr = Answer.array(o, what)
            if arr.shape[1] != d or arr.shape[0] > steps:
                raise InterfaceError(f"{what}: sequence {i} output has shape {arr.shape}")
            padded[i, : arr.shape[0]] = arr
        return padded
    arr = np.asarray(Answer.array(_plain(out), what), dtype=np.float64)
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
        param = _param(op, "cache")
        self.as_dict = param is not None and bool(re.search(r"\bdict\b", _annotation(param).lower()))
        named = _annotation(param) if param is not None else ""
        found = sub.candidates("cache") + sub.candidates("init_cache")
        by_name = [c for c in found if named and re.search(rf"\b{re.escape(c.name)}\b", named)]
        if by_name:
            self.factory = by_name[0].load()
        elif found and not (none_first and param is not None and param.default is None):
            self.factory = found[0].load()
        self.alternative = bool(found) and self.factory is None
        self.shared = self.factory is not None and _takes(op, "layer")
        self.caches: list[Any] = []

    def make(self) -> None:
        n = 1 if self.shared else self.setup.num_layers
        layers = self.setup.num_layers if self.shared else 1
        pool = dict(self.setup.sizes(layers))
        pool["config"] = ConfigMaker(self.sub, pool)
        self.caches = [_call(self.sub, self.factory, pool) if self.factory is not None else None for _ in range(n)]

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
            method = next((getattr(cache, n) for n in dir(cache) if re.search(_ADVANCE, n.lower())), None)
            if method is not None and callable(method) and not [p for p in _params(method) if p.default is p.empty]:
                self.sub.call(method)


def _read_weights(obj: Any, layer: int, d_model: int) -> dict[str, np.ndarray]:
    """The projection matrices (and biases) an instance created itself, replaced by counting views of the
    same values; {} unless all of q, k, v were found. Attributes, dicts of them, Linear-like objects
    (``.weight``/``.bias``) and fused q|k|v matrices (``W_qkv``, ``c_attn``, ``in_proj``) count."""
    if not hasattr(obj, "__dict__"):
        return {}
    d, found = d_model, {}
    containers = [vars(obj)] + [v for v in vars(obj).values() if isinstance(v, dict)]
    for attrs in containers:
        for name, value in list(attrs.items()):
            if not isinstance(name, str):
                continue
            fused = bool(re.search(r"qkv|c_?attn|in_?proj", name.lower()))
            concept = "wqkv" if fused else _weight_key(name)
            if concept is None:
                continue
            holder, key = attrs, name
            if not isinstance(value, np.ndarray) and hasattr(value, "__dict__"):
                inner = vars(value)
                if not (isinstance(inner.get("weight"), np.ndarray) and concept[0] == "w"):
                    continue
                holder, key, value = inner, "weight", inner["weight"]
                bias = inner.get("bias")
                if isinstance(bias, np.ndarray) and bias.shape in ((d,), (3 * d,)):
                    names = ["bq", "bk", "bv"] if fused else ["b" + concept[1]]
                    found.update(zip(names, np.split(np.asarray(bias, np.float64), len(names)), strict=True))
            if not isinstance(value, np.ndarray):
                continue
            if fused and value.shape in ((d, 3 * d), (3 * d, d)):
                parts = np.split(np.asarray(value, np.float64), 3, axis=1 if value.shape == (d, 3 * d) else 0)
                found.update(zip(("wq", "wk", "wv"), parts, strict=True))
                holder[key] = counted(value, layer, "wqkv")
            elif fused and value.shape == (3 * d,):
                found.update(zip(("bq", "bk", "bv"), np.split(np.asarray(value, np.float64), 3), strict=True))
            elif concept[0] == "w" and value.shape == (d, d):
                found[concept] = np.asarray(value, np.float64).copy()
                holder[key] = counted(value, layer, concept)
            elif concept[0] == "b" and value.shape == (d,):
                found[concept] = np.asarray(value, np.float64).copy()
    if not {"wq", "wk", "wv"} <= set(found):
        return {}
    found.setdefault("wo", np.eye(d_model))
    return found


class OpCalls(Engine):
    """Module and functional answers: callables taking x (+ lengths/mask, cache, layer, weights...)."""

    def __init__(self, sub: Answer, setup: Setup, ops: dict[str, list[Any]], caches: CacheHolder | None,
                 description: str, decode_2d: bool = True) -> None:  # fmt: skip
        super().__init__(setup)
        self.sub, self.ops, self.caches = sub, ops, caches
        self.description = description
        self.decode_2d = decode_2d
        first = ops.get("prefill", ops.get("generic"))[0]
        takes = [c for c in ("lengths", "mask", "positions") if _takes(first, c)]
        self.ragged = takes[0] if takes else None

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
        out = _call(self.sub, fn, self._pool(layer, x, lengths, before), ("x", "cache", "lengths", "layer"))
        out, new_cache = _split_output(out, self.setup)
        if new_cache is not None and self.caches is not None:
            self.caches.adopt(layer, new_cache)
        return _as_btd(out, self.setup, steps, f"{_name(fn)} output")

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


def _split_heads(t: np.ndarray, h: int, heads_first: bool) -> np.ndarray:
    b, steps, d = t.shape
    t = t.reshape(b, steps, h, d // h)
    return t.transpose(0, 2, 1, 3) if heads_first else t


class Attend:
    """One attention callable over a cache: module-level, or a method of the cache (``method`` set)."""

    def __init__(self, fn: Any, method: str | None = None) -> None:
        self.fn, self.method = fn, method
        self.writes = _takes(fn, "k") and _takes(fn, "v")
        self.projects = _takes(fn, "wq") or _takes(fn, "params")
        self.applies_wo = _takes(fn, "wo") or _takes(fn, "params")
        self.name = method or _name(fn)

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
        self.heads_first = _heads_first(caches.get(0), setup)
        cache_cls = type(caches.get(0)).__name__
        write = "" if decode.writes else f"{cache_cls}.{update} + "
        pair = decode.name if prefill is decode else f"{prefill.name} (prefill), {write}{decode.name} (decode)"
        self.description = f"cache {cache_cls}: {write if prefill is decode else ''}{pair}"
        upd = getattr(caches.get(0), update) if update else None
        ways = [c for c in ("lengths", "positions", "mask") if (upd is not None and _takes(upd, c))]
        ways += [c for c in ("lengths", "mask") if _takes(prefill.bound(caches.get(0)), c)]
        self.ragged = ways[0] if ways else None

    def _step(self, fn: Attend, layer: int, x: np.ndarray, new: np.ndarray) -> np.ndarray:
        w = self.setup.weights[layer]
        h = self.setup.num_heads
        before = self._note(layer, new)
        q, k, v = (_split_heads(x @ w[n], h, self.heads_first) for n in ("wq", "wk", "wv"))
        cache = self.caches.get(layer)
        pool: dict[str, Any] = {"layer": layer, "positions": before, **self.setup.sizes()}
        pool.update({"k": k, "v": v, "lengths": new, "mask": np.arange(x.shape[1])[None, :] < new[:, None]})
        if not fn.writes:
            update = getattr(cache, self.update_name)
            returned = _call(self.sub, update, pool, ("k", "v", "lengths"))
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
        out = _call(self.sub, fn.bound(cache), pool, order)
        out, _ = _split_output(out, self.setup)
        out = _as_btd(out, self.setup, x.shape[1], f"{fn.name} output")
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


def _methods(cls: type, pattern: str) -> list[str]:
    return [n for n in dir(cls) if re.search(pattern, n.lower()) and callable(getattr(cls, n, None))]


def _module_engines(sub: Answer, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    for cand in sub.candidates("attention")[:5]:

        def make(cand: Any = cand, none_first: bool = True) -> Engine:
            cls = cand.load()
            if not inspect.isclass(cls):
                raise InterfaceError(f"{cand} is not a class")
            prefill = _methods(cls, _PREFILL)
            decode = _methods(cls, _DECODE)
            generic = [n for n in _methods(cls, _GENERIC) if n != "__call__" or "__call__" in vars(cls)]
            if not (generic or (prefill and decode)):
                raise InterfaceError(f"class {cls.__name__} has no prefill/decode or forward methods")
            takes_weights = any(_concept(p.name) in ("wq", "params") for p in _params(cls))
            instances, read = [], []
            for layer in range(setup.num_layers):
                pool: dict[str, Any] = dict(setup.sizes(1))
                pool.update(setup.counted(layer))
                pool["params"] = setup.params_for(layer)
                pool["config"] = ConfigMaker(sub, setup.sizes(1))
                pool["layer"] = layer
                obj = _call(sub, cls, pool)
                block = [n for n in getattr(obj, "__dict__", {}) if re.search(_BLOCK_ATTR, str(n).lower())]
                if block:
                    raise InterfaceError(f"{cls.__name__} is a transformer block ({', '.join(block[:3])}), "
                                         "not the attention the prompt asks for")  # fmt: skip
                if not takes_weights:
                    weights = _read_weights(obj, layer, setup.d_model)
                    if not weights:
                        attrs = ", ".join(sorted(str(n) for n in getattr(obj, "__dict__", {}))[:12])
                        raise InterfaceError(f"{cls.__name__}: cannot find the projection weights it created "
                                             f"(attributes: {attrs})")  # fmt: skip
                    read.append(weights)
                instances.append(obj)
            chosen = {"prefill": prefill[:1], "decode": decode[:1]} if prefill and decode else {}
            if generic:
                chosen["generic"] = generic[:1]
            ops = {kind: [getattr(o, names[0]) for o in instances] for kind, names in chosen.items()}
            any_op = next(iter(ops.values()))[0]
            caches = None
            if _takes(any_op, "cache"):
                caches = CacheHolder(sub, setup, any_op, none_first)
                caches.make()
            methods = "/".join(names[0] for names in chosen.values())
            engine = OpCalls(sub, setup, ops, caches, f"class {cls.__name__} ({methods})")
            if read:
                engine.layers, engine.owned = read, True
                rms = np.sqrt(np.mean([np.mean(w[c] ** 2) for w in read for c in ("wq", "wk")]))
                engine.x_scale = float(np.clip(_WEIGHT_RMS / (np.sqrt(setup.d_model) * rms), 1e-3, 1e3))
                engine.description += " with the weights it created"
            return engine

        makers += [make, lambda make=make: make(none_first=False)]
    return makers


def _function_engines(sub: Answer, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    prefill = [c for c in sub.candidates("prefill") if "." not in c.name][:1]
    decode = [c for c in sub.candidates("decode") if "." not in c.name][:1]
    steps = [c for c in sub.candidates("step") if "." not in c.name][:3]

    def make(generic: Any = None, none_first: bool = True) -> Engine:
        ops: dict[str, list[Any]] = {}
        if prefill and decode:
            ops["prefill"] = [prefill[0].load()] * setup.num_layers
            ops["decode"] = [decode[0].load()] * setup.num_layers
        if generic is not None:
            fn = generic.load()
            if not _takes(fn, "x"):
                raise InterfaceError(f"{_name(fn)} takes no hidden states (x)")
            ops["generic"] = [fn] * setup.num_layers
        if not ops:
            raise InterfaceError("no prefill/decode pair and no attention forward function")
        first = next(iter(ops.values()))[0]
        caches = None
        if _takes(first, "cache"):
            caches = CacheHolder(sub, setup, first, none_first)
            caches.make()
        names = ", ".join(_name(v[0]) for v in ops.values())
        return OpCalls(sub, setup, ops, caches, f"functions {names}")

    for generic in steps:
        makers += [lambda g=generic: make(g), lambda g=generic: make(g, none_first=False)]
    if prefill and decode:
        makers += [lambda: make(None), lambda: make(None, none_first=False)]
    return makers


def _over_cache(params: Any) -> bool:
    concepts = {_concept(p) for p in params}
    return "cache" in concepts and ("q" in concepts or {"x", "wq"} <= concepts)


def _attends(sub: Answer, cls: type) -> list[Attend]:
    """Attention callables over a cache of class ``cls``, found by signature whatever their names: writers
    (take k, v) and readers (take q); each module-level one takes the cache, and queries or hidden states
    with the projection weights. Named step candidates first, then the other module-level functions."""
    named = [c for c in sub.candidates("step") if "." not in c.name]
    seen = {(c.file, c.name) for c in named}
    others = [
        (d.file, d.name)
        for d in sub.scan.definitions
        if d.kind == "function" and (d.file, d.name) not in seen and _over_cache(d.params)
        and not llmc_scan.looks_stale(d.file)
    ]  # fmt: skip
    found = []
    for file, name in [(c.file, c.name) for c in named][:8] + others[:8]:
        try:
            fn = sub.load(file, name)
        except (InterfaceError, SubmissionError):
            continue
        if callable(fn) and _over_cache(p.name for p in _params(fn)):
            found.append(Attend(fn))
    for name in _methods(cls, _CACHE_ATTEND):
        fn = getattr(cls, name)
        if _takes(fn, "q"):
            found.append(Attend(fn, method=name))
    return found


def _cache_ops_engines(sub: Answer, setup: Setup) -> list[Callable[[], Engine]]:
    makers: list[Callable[[], Engine]] = []
    for cls in sub.classes("cache"):
        attends = _attends(sub, cls)
        writers = [a for a in attends if a.writes]
        # a reader with a lengths parameter is the answer's own way to serve ragged batches: tried first
        readers = sorted((a for a in attends if not a.writes), key=lambda a: not _takes(a.fn, "lengths"))
        update = _methods(cls, _UPDATE)
        # prompts through a writer and steps through update + reader (the classic split) first
        pairs = [(w, r) for w in writers for r in readers] if update else []
        pairs += [(w, w) for w in writers] + ([(r, r) for r in readers] if update else [])
        for pre, dec in pairs[:6]:

            def make(cls: Any = cls, pre: Attend = pre, dec: Attend = dec, up: str | None = None) -> Engine:
                op = getattr(cls, up) if up else (pre.bound(cls) if pre.method else pre.fn)
                caches = CacheHolder(sub, setup, op)
                caches.factory = cls
                caches.shared = up is not None and _takes(getattr(cls, up), "layer")
                caches.make()
                return CacheOps(sub, setup, caches, up, pre, dec)

            makers.append(lambda make=make, up=(update[0] if update else None): make(up=up))
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
    caches = getattr(engine, "caches", None)
    if isinstance(caches, CacheHolder) and caches.kept_nothing:
        raise InterfaceError(f"{engine.description}: given no cache, it returned none (trying its cache class)")


_HINT = (
    'name the parts in llmchallenge.toml: [roles] attention = "file.py:AttentionClass" (prefill/decode_step or '
    'forward), or cache = "file.py:CacheClass" with step = "file.py:attention_over_cache", '
    'init_cache = "file.py:init_cache"'
)


def _engine(sub: Answer, setup: Setup) -> Engine:
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
                problems.append(f"{getattr(engine, 'description', '') or 'building'}: {str(exc).splitlines()[0]}"[:240])
                raised = raised or exc
            except (InterfaceError, Unsupported) as exc:
                problems.append(str(exc).splitlines()[0][:240])
            except Exception as exc:  # any failure means: not this convention
                problems.append(f"{type(exc).__name__}: {exc}"[:240])
            else:
                return make_fresh(make, decode_2d)
            if not isinstance(engine, OpCalls) or "decode" not in engine.ops:
                break
    declared = {"attention", "step", "cache", "prefill", "decode"} & set(sub.manifest)
    if raised is not None and declared:
        # the manifest named the parts: their own exception is the answer's error
        raise SubmissionError(f"{raised} (roles from llmchallenge.toml; tried: {'; '.join(problems[:4])})",
                              raised.detail)  # fmt: skip
    # failed guesses at a calling convention are not the answer's error: say what was tried and how to fix it
    error = sub.interface_error("attention", tried=problems[:8] or None, hint=_HINT)
    raise InterfaceError(f"not driven: {error}")


def make_fresh(make: Callable[[], Engine], decode_2d: bool) -> Engine:
    """A new engine of the convention that passed the probe (the probe's caches are not reused)."""
    engine = make()
    if isinstance(engine, OpCalls):
        engine.decode_2d = decode_2d
    return engine


def _arrays(obj: Any, depth: int = 2) -> list[np.ndarray]:
    """Arrays held by an object (attributes, dict values, list items), ``depth`` levels deep."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if depth == 0:
        return []
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)[:64]
    elif hasattr(obj, "__dict__") and not inspect.ismodule(obj) and not callable(obj):
        items = list(vars(obj).values())
    else:
        return []
    return [a for item in items for a in _arrays(item, depth - 1)]


def storage_dtype(engine: Engine) -> str:
    """The narrowest float type the answer's caches and modules store (e.g. float16 for a compressed cache)."""
    holders: list[Any] = []
    caches = getattr(engine, "caches", None)
    if caches is not None:
        holders += caches.caches
    for fns in getattr(engine, "ops", {}).values():
        holders += [getattr(fn, "__self__", None) for fn in fns]
    floats = {a.dtype for h in holders for a in _arrays(h) if np.issubdtype(a.dtype, np.floating)}
    return str(min(floats, key=lambda t: t.itemsize)) if floats else "float64"


def _kv_rows(num_layers: int) -> int:
    return sum(TALLY[(layer, c)] for layer in range(num_layers) for c in ("wk", "wv", "wqkv"))


def session(sub: Answer, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a scripted session and return every op's outputs (zeros at padding positions).

    spec: num_heads, capacity, layers (list of {wq, wk, wv, wo}), ops (see the module docstring), and
    ``expect_error``: when set, an exception raised by the submission ends the session and is reported as
    ``{"error": {"op": index, "message": ...}}`` instead of failing the call. ``Unsupported`` ops (appending
    several tokens where the API cannot) are reported as ``{"unsupported": message}``. The result also holds
    the weights computed with (``layers``, with biases where the answer has them), ``x_scale``, ``owned``
    (weights the answer created), ``projects`` and ``kv_rows`` (key and value vectors the answer projected
    through its weights during each op), and ``ragged`` (how per-sequence lengths reach the answer, or None).
    """
    first = np.asarray(spec["ops"][0]["x"])
    n_layers, batch, d_model = first.shape[0], first.shape[1], first.shape[-1]
    setup = Setup(n_layers, batch, int(spec["num_heads"]), d_model, int(spec["capacity"]), spec["layers"])
    engine = _engine(sub, setup)
    sub.ready()
    outputs: list[np.ndarray] = []
    layers = [{k: np.asarray(v, np.float64) for k, v in w.items()} for w in engine.layers]
    rows: list[int] = []
    result: dict[str, Any] = {
        "api": engine.description, "outputs": outputs, "layers": layers, "x_scale": engine.x_scale,
        "owned": engine.owned,
        "projects": engine.projects, "ragged": engine.ragged, "kv_rows": rows,
    }  # fmt: skip
    for index, op in enumerate(spec["ops"]):
        x = np.asarray(op["x"], dtype=np.float64) * engine.x_scale
        start = _kv_rows(n_layers)
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
        rows.append(_kv_rows(n_layers) - start)
        outputs.append(np.stack(per_layer).astype(np.float64))
    result["storage"] = storage_dtype(engine)
    return result
