"""Driver for ternary_training: finds the projection, the ternary layer, the model and the training code of a
NumPy (path B) or MLX (path A) answer, and runs them on the grader's tiny inputs. Adaptation only.

What is driven, and how:

- the projection: a function W -> W_q (or -> (codes, scales), or a dict of those), called on a NumPy array or,
  for an MLX answer, on an ``mx.array``; when no function fits, a ternary layer class with its latent weight set
  to W and the identity matrix as input (its output is then W_q transposed);
- the STE: the layer's own ``backward`` (NumPy) or ``mx.grad`` through the layer (MLX), with the gradient of the
  latent weight found in the return value, in an attribute, or in the gradient tree;
- the model: its constructor (a class or a builder function) at a tiny Qwen3-style configuration, with the
  configuration given as a config object, a dict or keyword arguments, whichever the constructor accepts;
- training: the answer's batching function, its train step (with its optimizer) or, for MLX, its loss function
  under ``nn.value_and_grad`` and MLX's AdamW.

Whether a model weight is ternary is measured, not read from class names: the latent weight is replaced by a
different matrix with the *same* group-of-128 mean-|W| ternary projection, and by one with a different projection.
A ternary weight leaves the logits unchanged under the first and changes them under the second; a float weight
changes them under both. The test module judges the numbers this returns.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from llmc_api import (
    Answer,
    InterfaceError,
    Role,
    SubmissionError,
    bind_by_name,
    parameters,
    qualified_name,
)

GROUP = 128

ROLES = {
    "quantizer": Role(
        prescribed=[
            "ternarize", "ternary_projection", "ternary_quantize", "quantize_ternary", "project_ternary",
            "ternarize_weights", "ternary_quant", "weight_quant", "absmean_quantize", "quantize_weights",
            "project_to_ternary", "ternarize_weight",
        ],
        patterns=[r"ternar", r"(absmean|weight).*quant", r"quantiz", r"project"],
        kind="function",
        min_params=1,
        description="ternary projection function W -> W_q",
    ),
    "layer": Role(
        prescribed=["TernaryLinear", "BitLinear", "TernaryDense", "BitLinear158", "TernaryLinearLayer"],
        patterns=[r"ternar.*(linear|dense|layer|proj)", r"bit_?linear", r"(linear|dense).*ternar", r"ternar",
                  r"quant.*linear"],
        kind="class",
        description="ternary linear layer class",
    ),
    "model": Role(
        prescribed=["Qwen3TernaryLM", "TernaryQwen3", "Qwen3Model", "Qwen3", "TernaryTransformer", "Transformer",
                    "Model", "TernaryLM", "build_model", "create_model", "make_model"],
        patterns=[r"qwen", r"^(build|make|create|init|get)_?(ternary_?)?model", r"(transformer|gpt|lm|model)$",
                  r"model"],
        kind="any",
        description="model class or builder taking a configuration",
    ),
    "config": Role(
        prescribed=["Qwen3Config", "ModelConfig", "Config", "ModelArgs", "TransformerConfig"],
        patterns=[r"config$", r"args$", r"config", r"hparams"],
        kind="class",
        description="model configuration class",
    ),
    "batch": Role(
        prescribed=["get_batch", "make_batch", "sample_batch", "get_batches", "batch_iterator", "iterate_batches"],
        patterns=[r"get_?batch", r"batch"],
        kind="function",
        min_params=1,
        description="batching function (tokens, batch_size, seq_len) -> (x, y)",
    ),
    "train_step": Role(
        prescribed=["train_step", "training_step", "train_on_batch"],
        patterns=[r"train.*step", r"^step$", r"update_step"],
        kind="function",
        min_params=2,
        description="train step (model, optimizer, x, y[, lr]) -> loss",
    ),
    "optimizer": Role(
        prescribed=["AdamW", "Adam", "AdamWOptimizer"],
        patterns=[r"adam", r"optim"],
        kind="class",
        description="optimizer class",
    ),
    "loss": Role(
        prescribed=["loss_fn", "compute_loss", "loss_and_grad", "cross_entropy_loss", "lm_loss", "loss"],
        patterns=[r"loss", r"cross_?entropy"],
        kind="function",
        min_params=2,
        description="loss function (model, x, y) -> scalar",
    ),
    "split": Role(
        prescribed=["split_train_validation", "train_val_split", "split_data", "split_dataset", "train_test_split",
                    "split_text"],
        patterns=[r"split", r"held_?out"],
        kind="function",
        min_params=1,
        description="train/validation split function",
    ),
}  # fmt: skip

_NAMES = {
    "vocab": r"^(vocab(_size)?|n_?vocab|num_tokens|v)$",
    "hidden": r"^(hidden_size|d_?model|dim|n_?embd|embed_dim|hidden_dim|d|emb_dim|model_dim|width)$",
    "layers": r"^(num_hidden_layers|n_?layers?|num_layers|depth|layers)$",
    "heads": r"^(num_attention_heads|n_?heads?|num_heads|heads|n_q_heads)$",
    "kv_heads": r"^(num_key_value_heads|n_?kv_?heads?|num_kv_heads|kv_heads|n_kv)$",
    "head_dim": r"^(head_dim|d_?head|head_size)$",
    "ffn": r"^(intermediate_size|ffn_?dim|d_?ff|hidden_dim_ff|ff_dim|mlp_dim|ffn_hidden|d_?hidden|intermediate)$",
    "ctx": r"^(max_position_embeddings|max_seq_len|block_size|seq_len|context_length|max_len|n_ctx|ctx_len)$",
    "group": r"^(group_size|gs|group|quant_group_size)$",
    "in": r"^(in_features|input_dims?|in_dims?|input_dim|d_in|fan_in|in_f|n_in|input_size|in_size|in_channels"
    r"|dim_in|din)$",
    "out": r"^(out_features|output_dims?|out_dims?|d_out|fan_out|out_f|n_out|output_size|out_size|out_channels"
    r"|dim_out|dout)$",
    "bias": r"^(bias|use_bias|has_bias)$",
    "model": r"^(model|net|lm|m|network|module)$",
    "optimizer": r"^(opt|optim|optimizer|optimiser)$",
    "x": r"^(x|xb|inputs?|ids|input_ids|tokens|idx|batch_x|x_batch|inp)$",
    "y": r"^(y|yb|targets?|labels?|batch_y|y_batch|tgt)$",
    "lr": r"^(lr|learning_rate|eta|step_size|alpha)$",
    "batch": r"^(batch|xy|batch_data)$",
    "data": r"^(data|tokens|ids|arr|dataset|train_data|source|seq|token_ids|encoded|split|corpus|text"
    r"|train_ids)$",
    "batch_size": r"^(batch_size|bs|b|n_batch|batch_sz|nb)$",
    "seq_len": r"^(seq_len|max_seq_len|block_size|context(_len(gth)?)?|ctx(_len)?|t|seq_length|length|n_ctx|max_len"
    r"|window|seqlen)$",
    "rng": r"^(rng|generator|random_state|gen|rs)$",
    "seed": r"^seed$",
    "params": r"^(params|parameters|named_params|param_dict|weights|model_params|param_list)$",
    "w": r"^(w|weight|weights|x|tensor|w_latent|latent|arr|mat|matrix|param|p|v|t|w_fp|w_float)$",
}  # fmt: skip

_BUFFER = re.compile(r"(cos|sin|rope|freq|mask|cache|causal|tril|triu|pos(ition)?_|grad|moment|^m$|^v$|_m$|_v$|adam)")
_WEIGHT_NAME = re.compile(r"^(weight|w|weights|latent(_weight)?|w_latent|kernel|table|embedding|embeddings|emb|e)$")
_GRAD_NAME = re.compile(r"(grad|^d_?w$|^dw$|^d_?weight$|^g_?w$|^dW$)", re.IGNORECASE)


# -- frameworks -------------------------------------------------------------------------------------------------
def _mlx():
    try:
        import mlx.core as mx
        import mlx.nn as nn

        return mx, nn
    except Exception:
        return None


def framework(sub: Answer) -> str:
    """'mlx' when any of the submission's files imports mlx, else 'numpy'."""
    return "mlx" if any("mlx" in mods for mods in sub.scan.imports.values()) else "numpy"


def _need_framework(sub: Answer) -> dict | None:
    if framework(sub) == "mlx" and _mlx() is None:
        return {"skip": "the submission uses MLX and mlx is not installed here (pip install 'mlx[cpu]')"}
    return None


def _is_mx(value: Any) -> bool:
    return type(value).__module__.startswith("mlx")


def to_numpy(value: Any, what: str) -> np.ndarray:
    if _is_mx(value):
        mx = _mlx()[0]
        mx.eval(value)
        value = np.array(value.astype(mx.float32)) if value.dtype in (mx.bfloat16,) else np.array(value)
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return Answer.array(value, what)


def _like(sub: Answer, arr: np.ndarray) -> Any:
    """An input in the submission's framework: mx.array for MLX answers, the NumPy array otherwise."""
    if framework(sub) == "mlx":
        mx = _mlx()[0]
        return mx.array(arr)
    return arr


# -- argument binding ---------------------------------------------------------------------------------------------
_params = parameters
_name = qualified_name


def _bind(fn: Callable[..., Any], values: dict[str, Any], order: list[str]) -> tuple[tuple, dict]:
    """Arguments for ``fn`` (llmc_api.bind_by_name), matching parameter names with the _NAMES patterns."""
    return bind_by_name(fn, values, {k: _NAMES[k] for k in values if k in _NAMES}, order)


def _method(obj: Any, pattern: str, exclude: tuple[str, ...] = ()) -> Callable[..., Any] | None:
    for name in dir(type(obj)):
        if name not in exclude and re.search(pattern, name) and callable(getattr(obj, name, None)):
            return getattr(obj, name)
    return None


def _forward(obj: Any) -> Callable[..., Any]:
    fwd = _method(obj, r"^(forward|fwd|__call__)$") if "forward" in dir(type(obj)) else None
    if fwd is None:
        fwd = obj if callable(obj) else _method(obj, r"^(forward|fwd|apply|run)$")
    if fwd is None:
        raise InterfaceError(f"{type(obj).__name__} has no forward/__call__")
    return fwd


# -- the projection ------------------------------------------------------------------------------------------------
def _group_size(n: int, groups: int) -> int:
    """The group size that splits ``n`` weights into ``groups`` groups: 128 with a partial last group if that fits."""
    return GROUP if math.ceil(n / GROUP) == groups else math.ceil(n / groups)


def _expand_scales(scales: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """Per-weight scales of a 2-D ``shape`` from per-group scales in any of the common layouts."""
    r, c = shape
    s = scales.reshape(-1)
    n = s.size
    if n == 1:
        return np.full(shape, s[0]), "one scale per tensor"
    if n % r == 0 and n // r <= c:
        groups = n // r
        size = _group_size(c, groups)
        return np.repeat(s.reshape(r, groups), size, axis=1)[:, :c], f"groups of {size} along the last axis"
    if n % c == 0 and n // c <= r:
        groups = n // c
        size = _group_size(r, groups)
        return np.repeat(s.reshape(groups, c), size, axis=0)[:r], f"groups of {size} along the first axis"
    size = _group_size(r * c, n)
    return np.repeat(s, size)[: r * c].reshape(shape), f"flat groups of {size}"


def _is_codes(a: np.ndarray) -> bool:
    return a.size > 0 and bool(np.all(np.isin(np.round(a, 6), (-1.0, 0.0, 1.0))))


def _read_projection(out: Any, w: np.ndarray, what: str) -> dict:
    """{projected, codes?, scales?, form} from what a projection returned."""
    if isinstance(out, dict):
        parts = [v for v in out.values() if _is_mx(v) or isinstance(v, (np.ndarray, list, float, int))]
    elif isinstance(out, (tuple, list)) and len(out) and not isinstance(out[0], (int, float)):
        parts = list(out)
    else:
        parts = [out]
    arrays = []
    for p in parts:
        try:
            arrays.append(to_numpy(p, what).astype(np.float64))
        except InterfaceError:
            continue
    full = [a for a in arrays if a.shape == w.shape]
    small = [a for a in arrays if a.shape != w.shape and 0 < a.size < w.size]
    if not full:
        raise InterfaceError(f"{what}: returned {[a.shape for a in arrays]}, none with the weight's shape {w.shape}")
    if len(full) >= 2:
        codes = next((a for a in full if _is_codes(a)), None)
        other = next((a for a in full if a is not codes and not _is_codes(a)), None)
        if codes is not None and other is not None:
            if np.all(other[codes == 0] == 0):  # (codes, W_q)
                return {"projected": other, "codes": codes, "form": "codes and projected weights"}
            return {"projected": codes * other, "codes": codes, "form": "codes and per-weight scales"}
    main = full[0]
    if _is_codes(main) and small:
        expanded, layout = _expand_scales(small[0], w.shape)
        return {"projected": main * expanded, "codes": main, "scales": small[0], "form": f"codes x scales ({layout})"}
    if _is_codes(main) and not small and np.max(np.abs(w)) > 2:
        return {"projected": main, "codes": main, "form": "codes only"}
    result = {"projected": main, "form": "projected weights"}
    if small:
        result["scales"] = small[0]
    return result


def _with_required_group(fn: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """The answer's own default group size is what is graded: 128 is passed only to a parameter without one."""
    required = any(p.default is p.empty and re.search(_NAMES["group"], p.name.lower()) for p in _params(fn))
    return {**values, "group": GROUP} if required else values


def _call_quantizer(sub: Answer, fn: Callable[..., Any], w: np.ndarray) -> dict:
    """The answer's own group size is what is graded: 128 is passed only where the function requires a value.
    A callable without an inspectable signature (``mx.custom_function``) takes the weight positionally."""
    values = _with_required_group(fn, {"w": _like(sub, w.astype(np.float32))})
    args, kwargs = _bind(fn, values, ["w"]) if _params(fn) else ((values["w"],), {})
    return _read_projection(sub.call(fn, *args, **kwargs), w, _name(fn))


# -- the ternary layer ---------------------------------------------------------------------------------------------
class Layer:
    """An instance of the answer's ternary layer with its latent weight set from the grader's matrix."""

    def __init__(self, sub: Answer, cls: type, in_features: int, out_features: int) -> None:
        self.sub, self.cls = sub, cls
        values = _with_required_group(cls, {"in": in_features, "out": out_features, "bias": False})
        args, kwargs = _bind(cls, values, ["in", "out"])
        self.obj = sub.call(cls, *args, **kwargs)
        self.shape = (out_features, in_features)
        self.attr, self.transposed = self._weight_attr()

    def _arrays(self) -> dict[str, Any]:
        if hasattr(self.obj, "trainable_parameters") and hasattr(self.obj, "items"):  # an mlx.nn.Module
            return {k: v for k, v in self.obj.items() if _is_mx(v)}
        return {k: v for k, v in vars(self.obj).items() if isinstance(v, np.ndarray)}

    def _weight_attr(self) -> tuple[str, bool]:
        out_f, in_f = self.shape
        hits = []
        for name, value in self._arrays().items():
            shape = tuple(value.shape)
            if shape in ((out_f, in_f), (in_f, out_f)) and not _GRAD_NAME.search(name) and not _BUFFER.search(name):
                hits.append((not _WEIGHT_NAME.match(name.lower()), name, shape != (out_f, in_f)))
        if not hits:
            raise InterfaceError(
                f"{self.cls.__name__}: no attribute holds a ({out_f}, {in_f}) latent weight "
                f"(arrays: {sorted(self._arrays())})"
            )
        _, name, transposed = sorted(hits)[0]
        return name, transposed

    def set_weight(self, w: np.ndarray) -> None:
        arr = (w.T if self.transposed else w).astype(np.float32)
        setattr(self.obj, self.attr, _like(self.sub, np.ascontiguousarray(arr)))

    def forward(self, x: np.ndarray) -> Any:
        return self.sub.call(_forward(self.obj), _like(self.sub, x.astype(np.float32)))

    def projected(self, w: np.ndarray) -> np.ndarray:
        """W_q (out, in) read off the layer: its output for the identity matrix is W_q transposed."""
        self.set_weight(w)
        eye = np.eye(self.shape[1], dtype=np.float32)
        return to_numpy(self.forward(eye), "layer output").T

    def describe(self) -> str:
        layout = ", stored (in, out)" if self.transposed else ""
        return f"class {self.cls.__name__} (weight attribute {self.attr!r}{layout})"


def _layer(sub: Answer, in_features: int = 2 * GROUP, out_features: int = GROUP) -> Callable[[int, int], Layer]:
    def probe(cls: Any) -> Callable[[int, int], Layer]:
        if not isinstance(cls, type):
            raise InterfaceError(f"{cls!r} is not a class")
        layer = Layer(sub, cls, in_features, out_features)
        out = to_numpy(layer.forward(np.ones((2, in_features), np.float32)), "layer output")
        if out.shape != (2, out_features):
            raise InterfaceError(f"{cls.__name__}: output shape {out.shape} for input (2, {in_features})")
        return lambda i, o: Layer(sub, cls, i, o)

    return sub.first_working("layer", probe)[1]


# -- driver functions: projection and STE -------------------------------------------------------------------------
def project(sub: Answer, weights: list[np.ndarray]) -> dict:
    """Each weight's ternary projection by the answer's own code: {how, results: [{projected, codes?, scales?}]}."""
    skip = _need_framework(sub)
    if skip:
        return skip
    problems = []
    if sub.candidates("quantizer"):
        try:
            fn, first = sub.first_working("quantizer", lambda f: _call_quantizer(sub, f, weights[0]))
            rest = [_call_quantizer(sub, fn, w) for w in weights[1:]]
            return {"how": f"function {_name(fn)} ({first['form']})", "results": [first, *rest]}
        except InterfaceError as exc:
            problems.append(str(exc).splitlines()[0][:400])
    make = _layer(sub)
    results = []
    for w in weights:
        layer = make(w.shape[1], w.shape[0])
        results.append({"projected": layer.projected(w), "form": "layer output for the identity"})
    how = f"{layer.describe()}, identity input" + (f" (no projection function: {problems[0]})" if problems else "")
    return {"how": how, "results": results}


def ste_gradient(sub: Answer, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> dict:
    """The gradient of the latent weight for L = sum(layer(x) * dy), in (out, in) layout, plus the output."""
    skip = _need_framework(sub)
    if skip:
        return skip
    layer = _layer(sub)(w.shape[1], w.shape[0])
    layer.set_weight(w)
    if framework(sub) == "mlx":
        mx, nn = _mlx()
        dy_mx = mx.array(dy.astype(np.float32))

        def loss(xx):
            return (layer.obj(xx) * dy_mx).sum()

        value_and_grad = nn.value_and_grad(layer.obj, loss)
        _, grads = sub.call(value_and_grad, mx.array(x.astype(np.float32)))
        if layer.attr not in grads:
            raise InterfaceError(f"mx.grad through {layer.describe()} gave no gradient for {layer.attr!r}")
        grad = to_numpy(grads[layer.attr], "weight gradient")
        y = to_numpy(layer.forward(x), "layer output")
        how = f"{layer.describe()}, nn.value_and_grad"
    else:
        y = to_numpy(layer.forward(x), "layer output")
        before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(layer.obj).items()}
        bwd = _method(layer.obj, r"^(backward|bwd|backprop|backward_pass|grad)$")
        if bwd is None:
            raise InterfaceError(f"{layer.describe()} has no backward method")
        out = sub.call(bwd, dy.astype(np.float32))
        grad, where = _find_weight_grad(layer, out, before)
        how = f"{layer.describe()}, {_name(bwd)} -> {where}"
    if layer.transposed:
        grad = grad.T
    return {"grad": grad, "y": y, "how": how}


def _find_weight_grad(layer: Layer, out: Any, before: dict) -> tuple[np.ndarray, str]:
    want = layer.shape[::-1] if layer.transposed else layer.shape
    items = (
        list(out.items()) if isinstance(out, dict) else list(enumerate(out)) if isinstance(out, (tuple, list)) else []
    )
    for key, value in items:
        if isinstance(value, np.ndarray) and value.shape == want:
            return value.astype(np.float64), f"returned item {key!r}"
    candidates = []
    weight = vars(layer.obj)[layer.attr]
    for name, value in vars(layer.obj).items():
        if name == layer.attr:
            continue
        pairs = [(name, value)]
        if isinstance(value, dict):
            pairs = [(f"{name}[{k!r}]", v) for k, v in value.items()]
        for label, v in pairs:
            if isinstance(v, np.ndarray) and v.shape == want and v is not weight and np.any(v):
                old = before.get(name)
                changed = not (isinstance(old, np.ndarray) and old.shape == v.shape and np.array_equal(old, v))
                if changed or isinstance(value, dict):
                    candidates.append((not _GRAD_NAME.search(label), label, v))
    if not candidates:
        raise InterfaceError(
            f"after {layer.cls.__name__}.backward no array of shape {want} holds the weight gradient "
            f"(attributes: {sorted(vars(layer.obj))})"
        )
    _, label, value = sorted(candidates, key=lambda c: (c[0], c[1]))[0]
    return value.astype(np.float64), f"attribute {label}"


# -- the model -------------------------------------------------------------------------------------------------------
def _config_values(vocab: int) -> dict[str, Any]:
    return {
        "vocab": vocab,
        "hidden": 128,
        "layers": 2,
        "heads": 4,
        "kv_heads": 2,
        "head_dim": 64,
        "ffn": 256,
        "ctx": 64,
    }


def _fill_config(cfg: Any, values: dict[str, Any]) -> Any:
    """Set every attribute of a config object (or dict) that matches a tiny-config name."""
    keys = list(cfg) if isinstance(cfg, dict) else list(vars(cfg))
    for attr in keys:
        key = next((k for k in values if re.search(_NAMES[k], attr.lower())), None)
        if key is not None:
            if isinstance(cfg, dict):
                cfg[attr] = values[key]
            else:
                setattr(cfg, attr, values[key])
    return cfg


def _build_attempts(sub: Answer, ctor: Any, vocab: int) -> list[tuple[str, Callable[[], Any]]]:
    values = _config_values(vocab)
    attempts = []
    for cand in sub.candidates("config")[:3]:

        def with_config(cand=cand):
            return sub.call(ctor, _make_config(sub, cand.load(), values))

        attempts.append((f"{_name(ctor)}({cand.name}(...))", with_config))

    try:
        bound = _bind(ctor, _with_required_group(ctor, values), [])
    except InterfaceError:
        bound = None

    def with_kwargs():
        if bound is None:
            return _bind(ctor, _with_required_group(ctor, values), [])  # raises: the probe fails
        return sub.call(ctor, *bound[0], **bound[1])

    def with_dict():
        return sub.call(ctor, _fill_config({k: v for k, v in _dict_config(values).items()}, values))

    sized = bound is None or bound[0] or bound[1]
    kwargs_label = f"{_name(ctor)}(**tiny config)" if sized else f"{_name(ctor)}() (its default configuration)"
    attempts += [(kwargs_label, with_kwargs), (f"{_name(ctor)}(dict config)", with_dict)]
    return attempts


def _make_config(sub: Answer, cls: Any, values: dict[str, Any]) -> Any:
    """An instance of the answer's config class at the tiny size: parameters named as in Qwen3's config.json take
    those values, others the value their name matches; ``from_dict`` (mlx_lm's convention) when it exists."""
    named = _dict_config(values)
    if callable(getattr(cls, "from_dict", None)):
        try:
            return _fill_config(sub.call(cls.from_dict, dict(named)), values)
        except SubmissionError:
            pass
    kwargs: dict[str, Any] = {}
    for p in _params(cls):
        key = next((k for k in values if re.search(_NAMES[k], p.name.lower())), None)
        if p.name in named:
            kwargs[p.name] = named[p.name]
        elif key is not None:
            kwargs[p.name] = values[key]
        elif p.default is p.empty and re.search(_NAMES["group"], p.name.lower()):
            kwargs[p.name] = GROUP
        elif p.default is p.empty:
            raise InterfaceError(f"{_name(cls)}: no tiny-config value for its parameter {p.name!r}")
    return _fill_config(sub.call(cls, **kwargs), values)


def _dict_config(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "vocab_size": values["vocab"],
        "hidden_size": values["hidden"],
        "num_hidden_layers": values["layers"],
        "num_attention_heads": values["heads"],
        "num_key_value_heads": values["kv_heads"],
        "head_dim": values["head_dim"],
        "intermediate_size": values["ffn"],
        "max_position_embeddings": values["ctx"],
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "model_type": "qwen3",
    }


MAX_PARAMETERS = 20_000_000  # a model built from an answer's own default configuration must train on CPU


def _logits(sub: Answer, model: Any, ids: np.ndarray, vocab: int) -> np.ndarray:
    fwd = _forward(model)
    out = sub.call(fwd, _like(sub, ids))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = next(v for k, v in out.items() if "logit" in str(k).lower())
    arr = to_numpy(out, "model output").astype(np.float64)
    if arr.shape[-1] != vocab:
        raise InterfaceError(f"model output has shape {arr.shape}; expected logits with {vocab} on the last axis")
    return arr.reshape(-1, vocab)


def _model_vocab(sub: Answer, model: Any, ids: np.ndarray, least: int) -> int:
    """The vocabulary of a model built from the answer's own configuration: the last axis of its logits, which
    must hold the grader's token ids."""
    out = sub.call(_forward(model), _like(sub, ids))
    out = out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(out, dict):
        out = next(v for k, v in out.items() if "logit" in str(k).lower())
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) < 2 or shape[-1] < least:
        raise InterfaceError(f"model output has shape {shape}; expected logits over at least {least} tokens")
    return int(shape[-1])


def _parameter_count(model: Any) -> int:
    return sum(int(np.prod(getattr(_get(c, k), "shape", ()))) for _, c, k in _weights(model))


def _estimated_size(cfg: Any) -> int | None:
    """Parameters a configuration object (or dict) describes, from the sizes its field names give; None when it
    does not name vocabulary, width and depth. Read before building, so a NumPy model never allocates a default
    Qwen3-0.6B (600M weights) just to learn that it is too large."""
    fields = cfg if isinstance(cfg, dict) else vars(cfg) if hasattr(cfg, "__dict__") else {}
    sizes: dict[str, int] = {}
    for name, value in fields.items():
        key = next((k for k in ("vocab", "hidden", "layers", "ffn") if re.search(_NAMES[k], str(name).lower())), None)
        if key and isinstance(value, int) and not isinstance(value, bool) and key not in sizes:
            sizes[key] = value
    if not {"vocab", "hidden", "layers"} <= sizes.keys():
        return None
    v, d, n = sizes["vocab"], sizes["hidden"], sizes["layers"]
    return 2 * v * d + n * (4 * d * d + 3 * d * sizes.get("ffn", 4 * d))


def _small_enough(cfg: Any, label: str) -> None:
    size = _estimated_size(cfg)
    if size is not None and size > MAX_PARAMETERS:
        raise InterfaceError(f"{label}: about {size:,} parameters, more than {MAX_PARAMETERS:,} can train here")


def _default_attempts(sub: Answer, ctor: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The answer's own default configuration: the constructor without arguments, or given an instance of its
    config class made without arguments (rule: a model built from the answer's own configuration passes)."""
    attempts = []
    if all(p.default is not p.empty for p in _params(ctor)):

        def without_arguments() -> Any:
            for p in _params(ctor):
                _small_enough(p.default, f"{_name(ctor)}'s default {p.name}")
            return sub.call(ctor)

        attempts.append((f"{_name(ctor)}() (its default configuration)", without_arguments))
    for cand in sub.candidates("config")[:3]:

        def with_default(cand: Any = cand) -> Any:
            cls = cand.load()
            if any(p.default is p.empty for p in _params(cls)):
                raise InterfaceError(f"{cand.name} has required parameters")
            cfg = sub.call(cls)
            _small_enough(cfg, f"{cand.name}()")
            return sub.call(ctor, cfg)

        attempts.append((f"{_name(ctor)}({cand.name}()) (its default configuration)", with_default))
    return attempts


def build_model(sub: Answer, vocab: int) -> tuple[Any, str, int]:
    """(model, how it was built, its vocabulary): the tiny configuration where the constructor takes one, else
    the answer's own default configuration when it is small enough to train here."""
    ids = (np.arange(16) % vocab).reshape(1, 16).astype(np.int64)
    np.random.seed(0)  # answers initialise from the global generators: the same model on every run
    if framework(sub) == "mlx":
        _mlx()[0].random.seed(0)
    problems = []
    ctors = []
    for cand in sub.candidates("model")[:6]:
        try:
            ctor = cand.load()
        except (InterfaceError, SubmissionError) as exc:
            problems.append(f"{cand}: {str(exc).splitlines()[0][:200]}")
            continue
        if not callable(ctor) or re.search(
            r"ternar.*(linear|embed)|bitlinear|rmsnorm|attention|mlp", cand.name.lower()
        ):
            continue
        ctors.append(ctor)
        for label, attempt in _build_attempts(sub, ctor, vocab):
            try:
                model = attempt()
                _logits(sub, model, ids, vocab)
                return model, label, vocab
            except Exception as exc:  # a failed probe: InterfaceError and SubmissionError included
                problems.append(f"{label}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")
    for ctor in ctors:
        for label, attempt in _default_attempts(sub, ctor):
            try:
                model = attempt()
                size = _parameter_count(model)
                if size > MAX_PARAMETERS:
                    raise InterfaceError(f"{size:,} parameters, more than {MAX_PARAMETERS:,} can train here")
                return model, label, _model_vocab(sub, model, ids, vocab)
            except Exception as exc:  # a failed probe
                problems.append(f"{label}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")
    raise sub.interface_error(
        "model",
        tried=problems[:8] or None,
        hint="the model must accept a configuration (vocab, hidden size, layers, heads) or default to a small one",
    )


def _weights(model: Any) -> list[tuple[str, Any, Any]]:
    """(path, container, key) of every 2-D float array reachable from the model (MLX: its parameter tree)."""
    if hasattr(model, "trainable_parameters") and hasattr(model, "update"):
        from mlx.utils import tree_flatten

        return [(name, model, name) for name, v in tree_flatten(model.parameters()) if v.ndim == 2]
    found, seen = [], set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if depth > 7 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, (list, tuple)):
            items = list(enumerate(obj))
        elif _is_object(obj):
            items = list(vars(obj).items())
        else:
            return
        for key, value in items:
            label = f"{path}.{key}" if path else str(key)
            if isinstance(value, np.ndarray):
                if value.ndim == 2 and np.issubdtype(value.dtype, np.floating) and id(value) not in seen:
                    seen.add(id(value))
                    found.append((label, obj, key))
            elif isinstance(value, (dict, list, tuple)) or _is_object(value):
                walk(value, label, depth + 1)

    walk(model, "", 0)
    return found


def _is_object(value: Any) -> bool:
    """An instance whose attributes may hold weights (not a class, module, function or generator)."""
    return (
        hasattr(value, "__dict__")
        and not isinstance(value, type)
        and not inspect.ismodule(value)
        and not inspect.isroutine(value)
        and not isinstance(value, np.random.Generator)
    )


def _get(container: Any, key: Any) -> Any:
    if hasattr(container, "trainable_parameters") and isinstance(key, str):
        from mlx.utils import tree_flatten

        return dict(tree_flatten(container.parameters()))[key]
    return container[key] if isinstance(container, (dict, list, tuple)) else getattr(container, key)


def _set(container: Any, key: Any, value: np.ndarray, like: Any) -> None:
    if _is_mx(like):
        mx = _mlx()[0]
        new = mx.array(value.astype(np.float32)).astype(like.dtype)
        if hasattr(container, "trainable_parameters") and isinstance(key, str):
            from mlx.utils import tree_unflatten

            container.update(tree_unflatten([(key, new)]))
            return
        value = new
    else:
        like[...] = value.astype(like.dtype)  # in place: tied weights see the change too
        return
    if isinstance(container, (dict, list)):
        container[key] = value
    else:
        setattr(container, key, value)


def same_projection(w: np.ndarray, axis: int, seed: int = 0) -> np.ndarray:
    """A matrix far from ``w`` whose group-of-128 mean-|W| ternary projection (groups along ``axis``) is ``w``'s.

    Zero codes get |W'| <= 0.35 s, nonzero codes magnitudes >= 0.7 s, and the group's mean |W'| is exactly s.
    """
    rng = np.random.default_rng(seed)
    a = np.moveaxis(np.asarray(w, np.float64), axis, -1)
    out = np.empty_like(a)
    n = a.shape[-1]
    for j0 in range(0, n, GROUP):
        blk = a[..., j0 : j0 + GROUP]
        s = np.abs(blk).mean(axis=-1, keepdims=True)
        safe = np.where(s > 0, s, 1.0)
        codes = np.clip(np.rint(blk / safe), -1, 1) * (s > 0)
        nz = codes != 0
        f = nz.mean(axis=-1, keepdims=True)
        z = rng.uniform(-0.35, 0.35, blk.shape) * s * ~nz
        big = (s - np.abs(z).sum(axis=-1, keepdims=True) / blk.shape[-1]) / np.where(f > 0, f, 1.0)
        u = rng.uniform(-1, 1, blk.shape) * nz
        u -= nz * (u.sum(axis=-1, keepdims=True) / np.maximum(nz.sum(axis=-1, keepdims=True), 1))
        mag = big * (1.0 + 0.15 * u)
        out[..., j0 : j0 + GROUP] = codes * mag + z
    return np.moveaxis(out, -1, axis)


def _weight_effects(sub: Answer, model: Any, vocab: int, ids: np.ndarray) -> list[dict]:
    base = _logits(sub, model, ids, vocab)
    scale = float(np.abs(base).max()) or 1.0
    results = []
    for path, container, key in _weights(model):
        if _BUFFER.search(str(key).lower()) and not _WEIGHT_NAME.match(str(key).lower()):
            continue
        original = _get(container, key)
        w = to_numpy(original, path).astype(np.float64)
        entry = {"path": path, "shape": list(w.shape), "owner": type(container).__name__}
        for label, make in (
            ("reversed", lambda w=w: w[::-1].copy()),
            ("same_projection_last", lambda w=w: same_projection(w, -1)),
            ("same_projection_first", lambda w=w: same_projection(w, 0)),
        ):
            _set(container, key, make(), _get(container, key))
            try:
                entry[label] = float(np.abs(_logits(sub, model, ids, vocab) - base).max() / scale)
            finally:
                _set(container, key, w, _get(container, key))
            if entry["reversed"] == 0.0:  # not a weight of the forward pass (a cache, a gradient buffer)
                entry.update(same_projection_last=0.0, same_projection_first=0.0)
                break
        results.append(entry)
    return results


def model_weights(sub: Answer, vocab: int, ids: np.ndarray) -> dict:
    """For every 2-D weight of the answer's tiny model: how much the logits move (relative) when the latent weight
    is replaced by a matrix with the same ternary projection (groups along the last or the first axis), and when
    it is replaced by its row-reversed self (a different projection)."""
    skip = _need_framework(sub)
    if skip:
        return skip
    model, how, vocab = build_model(sub, vocab)
    return {"how": how, "vocab": vocab, "weights": _weight_effects(sub, model, vocab, ids)}


# -- data and training -------------------------------------------------------------------------------------------------
def _own_batch(tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator) -> tuple:
    starts = rng.integers(0, len(tokens) - seq_len - 1, size=batch_size)
    x = np.stack([tokens[s : s + seq_len] for s in starts])
    y = np.stack([tokens[s + 1 : s + seq_len + 1] for s in starts])
    return x, y


class _Tokenizer:
    """Stands in for an answer's tokenizer (a Hugging Face one cannot be downloaded here): ``encode`` of any text
    returns the grader's token stream, so a batching function that tokenizes for itself batches those tokens."""

    def __init__(self, tokens: np.ndarray) -> None:
        self.tokens = tokens
        self.vocab_size = int(tokens.max()) + 1
        self.eos_token_id = self.bos_token_id = self.pad_token_id = None

    def encode(self, text: str, *args: Any, **kwargs: Any) -> list[int]:
        return [int(t) for t in self.tokens]

    def __call__(self, text: str, *args: Any, **kwargs: Any) -> dict:
        return {"input_ids": self.encode(text)}


def _read_batch(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) from what a batching function returned; (windows, None) when it returns token windows only
    (the shift into inputs and targets is then made by its caller)."""
    if inspect.isgenerator(out):
        out = next(out)
    if isinstance(out, dict):
        x = next((out[k] for k in ("x", "inputs", "input_ids", "input") if k in out), None)
        y = next((out[k] for k in ("y", "targets", "labels", "target") if k in out), None)
        if x is not None and y is not None:
            out = (x, y)
    if isinstance(out, (tuple, list)) and len(out) == 2 and not isinstance(out[0], (int, np.integer)):
        try:
            x, y = (to_numpy(v, "batch").astype(np.int64) for v in out)
            if x.shape == y.shape and x.ndim in (1, 2):
                return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        except InterfaceError:
            pass
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], (tuple, list)) and len(out[0]) == 2:
        return _read_batch(out[0])  # a list of (x, y) batches
    if isinstance(out, (tuple, list)):
        out = [to_numpy(v, "batch window") for v in out[:64]]
        if len({a.shape for a in out}) != 1:
            raise InterfaceError(f"batch windows of shapes {sorted({a.shape for a in out})[:3]}")
        out = np.stack(out)
    arr = to_numpy(out, "batch").astype(np.int64)
    if arr.ndim < 2:
        raise InterfaceError(f"batch of shape {arr.shape}")
    return arr.reshape(-1, arr.shape[-1]), None


def _call_batcher(
    sub: Answer, fn: Callable[..., Any], tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator
) -> Any:
    """The batching function called with its own signature: token data or (tokenizer, text), sizes, a generator."""
    names = [p.name.lower() for p in _params(fn)]
    values: dict[str, Any] = {"batch_size": batch_size, "seq_len": seq_len, "rng": rng, "seed": 0}
    if any(re.search(r"tok(enizer)?$|^enc(oder)?$", n) for n in names):
        tok_name = next(p.name for p in _params(fn) if re.search(r"tok(enizer)?$|^enc(oder)?$", p.name.lower()))
        values["data"] = "text " * 64
        args, kwargs = bind_by_name(
            fn,
            {**values, "tok": _Tokenizer(tokens)},
            {"tok": f"^{tok_name.lower()}$", **{k: _NAMES[k] for k in values}},
            ["tok", "data", "batch_size", "seq_len"],
        )
    else:
        values["data"] = _like(sub, tokens)
        args, kwargs = _bind(fn, values, ["data", "batch_size", "seq_len"])
    return sub.call(fn, *args, **kwargs)


def batch_pairs(sub: Answer, tokens: np.ndarray, batch_size: int, seq_len: int) -> dict:
    """What the answer's batching function makes of ``tokens``: {how, x, y} for (inputs, targets) pairs,
    {how, windows} for plain windows, {tried} when no batching function can be driven (a failed probe)."""
    skip = _need_framework(sub)
    if skip:
        return skip
    tried = []
    for cand in sub.candidates("batch")[:6]:
        try:
            fn = cand.load()
            x, y = _read_batch(_call_batcher(sub, fn, tokens, batch_size, seq_len, np.random.default_rng(0)))
        except Exception as exc:  # a failed probe: InterfaceError, SubmissionError, anything the call raised
            tried.append(f"{cand}: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}")
            continue
        if y is None:
            return {"how": f"batching {cand}", "windows": x[:64]}
        return {"how": f"batching {cand}", "x": x[:64], "y": y[:64]}
    return {"tried": tried}


def _batcher(sub: Answer, tokens: np.ndarray, batch_size: int, seq_len: int) -> tuple[Callable[[], tuple], str]:
    """The answer's batching where it yields (inputs, targets) pairs, else the grader's (noted in ``how``)."""
    rng = np.random.default_rng(0)
    for cand in sub.candidates("batch")[:6]:
        try:
            fn = cand.load()
            _, y = _read_batch(_call_batcher(sub, fn, tokens, batch_size, seq_len, rng))
        except Exception:  # a failed probe
            continue
        if y is None:
            continue

        def draw(fn: Callable[..., Any] = fn) -> tuple:
            x, y = _read_batch(_call_batcher(sub, fn, tokens, batch_size, seq_len, rng))
            if y is None:
                raise InterfaceError(f"{_name(fn)} stopped returning (inputs, targets)")
            return x, y

        return draw, f"batching {cand}"
    return (lambda: _own_batch(tokens, batch_size, seq_len, rng)), "the grader's batching (no (x, y) batch function)"


def _scalar(value: Any) -> float:
    if isinstance(value, (tuple, list)):
        value = value[0]
    if isinstance(value, dict):
        value = next(v for k, v in value.items() if "loss" in str(k).lower())
    return float(to_numpy(value, "loss").reshape(-1)[0])


def _declared(fn: Callable[..., Any], keys: list[str]) -> bool:
    """Whether every required parameter of ``fn`` is bound by its name (not by a positional guess): only then is
    an exception from the call the answer's error rather than a failed probe."""
    required = [p.name.lower() for p in _params(fn) if p.default is p.empty]
    return bool(required) and all(any(re.search(_NAMES[k], n) for k in keys) for n in required)


def _numpy_stepper(sub: Answer, model: Any, lr: float, first: tuple) -> tuple[Callable[[Any, Any], float], str]:
    """The answer's train step (with its optimizer), probed with one step on ``first``. An exception is a failed
    probe unless every parameter was bound by name, where it is the answer's own error."""
    problems = []
    for cand in sub.candidates("train_step")[:4]:
        try:
            fn = cand.load()
            names = [p.name.lower() for p in _params(fn)]
            values: dict[str, Any] = {"model": model, "lr": lr}
            if any(re.search(_NAMES["optimizer"], n) for n in names):
                values["optimizer"] = _optimizer(sub, model, lr)
            step = _bound_step(sub, fn, values)
            step(*first)
            return step, f"train step {cand}"
        except SubmissionError as exc:
            if _declared(fn, ["model", "optimizer", "x", "y", "lr", "batch"]):
                raise
            problems.append(f"{cand}: {str(exc).splitlines()[0][:200]}")
        except InterfaceError as exc:
            problems.append(f"{cand}: {str(exc).splitlines()[0][:200]}")
    raise sub.interface_error("train_step", tried=problems or None)


def _bound_step(sub: Answer, fn: Callable[..., Any], values: dict[str, Any]) -> Callable[[Any, Any], float]:
    def step(x: Any, y: Any) -> float:
        x, y = _like(sub, x), _like(sub, y)
        args, kwargs = _bind(fn, {**values, "x": x, "y": y, "batch": (x, y)}, ["model", "optimizer", "x", "y", "lr"])
        return _scalar(sub.call(fn, *args, **kwargs))

    return step


def _optimizer(sub: Answer, model: Any, lr: float) -> Any:
    problems = []
    for cand in sub.candidates("optimizer")[:3]:
        try:
            cls = cand.load()
            names = [p.name.lower() for p in _params(cls)]
            params = (
                model.parameters() if callable(getattr(model, "parameters", None)) else getattr(model, "params", model)
            )
            values = {"lr": lr, "params": params, "model": model}
            args, kwargs = _bind(cls, values, ["params" if "params" in "".join(names) or not names else "model"])
            return sub.call(cls, *args, **kwargs)
        except (InterfaceError, SubmissionError) as exc:
            problems.append(f"{cand}: {str(exc).splitlines()[0][:200]}")
    raise sub.interface_error("optimizer", tried=problems or None)


def _loss_caller(sub: Answer, fn: Callable[..., Any]) -> Callable[[Any, Any, Any], Any]:
    """loss(model, x, y) for the answer's loss function: (model, x, y) or (model, batch) where the batch is the
    token windows and the function makes the shift itself (it then gets x with y's last token appended)."""
    mx = _mlx()[0]
    required = [p for p in _params(fn) if p.default is p.empty]
    names = [p.name.lower() for p in required]
    takes_y = any(re.search(_NAMES["y"], n) for n in names) or len(required) >= 3

    def loss_of(m: Any, x: Any, y: Any) -> Any:
        if takes_y:
            args, kwargs = _bind(fn, {"model": m, "x": x, "y": y}, ["model", "x", "y"])
        else:
            windows = mx.concatenate([x, y[:, -1:]], axis=1)
            args, kwargs = _bind(fn, {"model": m, "x": windows, "batch": windows}, ["model", "x"])
        out = fn(*args, **kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out

    return loss_of


def _mlx_stepper(sub: Answer, model: Any, lr: float, first: tuple) -> tuple[Callable[[Any, Any], float], str]:
    """The answer's train step (given mlx AdamW where it takes an optimizer), else its loss function under
    nn.value_and_grad, else the grader's cross-entropy; each probed with one step on ``first``."""
    mx, nn = _mlx()
    import mlx.optimizers as optim

    tried = []
    for cand in sub.candidates("train_step")[:4]:
        try:
            fn = cand.load()
            names = [p.name.lower() for p in _params(fn)]
            values: dict[str, Any] = {"model": model, "lr": lr}
            if any(re.search(_NAMES["optimizer"], n) for n in names):
                values["optimizer"] = optim.AdamW(learning_rate=lr)
            step = _bound_step(sub, fn, values)
            step(*first)
            return step, f"train step {cand} with mlx AdamW"
        except Exception as exc:  # a failed probe
            tried.append(f"{cand}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}")
    opt = optim.AdamW(learning_rate=lr)
    options: list[tuple[str, Callable[[Any, Any, Any], Any]]] = []
    for cand in sub.candidates("loss")[:4]:
        try:
            options.append((f"loss {cand}", _loss_caller(sub, cand.load())))
        except Exception as exc:  # a failed probe
            tried.append(f"{cand}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}")

    def grader_loss(m: Any, x: Any, y: Any) -> Any:
        logits = m(x)
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        return nn.losses.cross_entropy(logits, y).mean()

    options.append(("the grader's cross-entropy on the model's logits", grader_loss))
    for label, loss_of in options:
        value_and_grad = nn.value_and_grad(model, loss_of)

        def step(x: Any, y: Any, value_and_grad: Any = value_and_grad) -> float:
            loss, grads = sub.call(value_and_grad, model, mx.array(x), mx.array(y))
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            return float(loss.item())

        try:
            step(*first)
        except Exception as exc:  # a failed probe
            tried.append(f"{label}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}")
            continue
        note = f" (not driven: {'; '.join(tried)[:300]})" if tried else ""
        return step, f"{label} under nn.value_and_grad + mlx AdamW{note}"
    raise InterfaceError("no way to train the model: " + "; ".join(tried)[:600])


def train(
    sub: Answer,
    tokens: np.ndarray,
    vocab: int,
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float,
    check_ids: np.ndarray | None = None,
) -> dict:
    """Train the answer's tiny model on ``tokens`` with its own batching and step; the loss of every step,
    and (with ``check_ids``) the weight effects of the trained model."""
    skip = _need_framework(sub)
    if skip:
        return skip
    model, built, vocab = build_model(sub, vocab)
    draw, batching = _batcher(sub, tokens, batch_size, seq_len)
    if framework(sub) == "mlx":
        stepper, stepping = _mlx_stepper(sub, model, lr, draw())
    else:
        stepper, stepping = _numpy_stepper(sub, model, lr, draw())
    losses = []
    for _ in range(steps):
        x, y = draw()
        losses.append(stepper(x, y))
    result = {"losses": np.asarray(losses), "how": f"{built}; {batching}; {stepping}"}
    if check_ids is not None:
        result["weights"] = _weight_effects(sub, model, vocab, check_ids)
    return result


def split(sub: Answer, text: str, tokens: np.ndarray) -> dict:
    """The answer's train/validation split applied to a text (or, if it takes tokens, to ``tokens``)."""
    skip = _need_framework(sub)
    if skip:
        return skip
    problems = []
    for cand in sub.candidates("split")[:4]:
        try:
            fn = cand.load()
        except (InterfaceError, SubmissionError) as exc:
            problems.append(f"{cand}: {str(exc).splitlines()[0][:200]}")
            continue
        for data in (text, tokens):
            try:
                args, kwargs = _bind(fn, {"data": data}, ["data"])
                out = sub.call(fn, *args, **kwargs)
                if isinstance(out, dict):
                    out = [out[k] for k in out if re.search(r"train", str(k))] + [
                        out[k] for k in out if re.search(r"val|test|held", str(k))
                    ]
                train_part, val_part = out[0], out[1]
                if isinstance(data, str):
                    if not isinstance(train_part, str):
                        train_part, val_part = "".join(train_part), "".join(val_part)
                    return {"kind": "text", "train": train_part, "validation": val_part, "how": _name(fn)}
                return {
                    "kind": "tokens",
                    "train": to_numpy(train_part, "train split").astype(np.int64),
                    "validation": to_numpy(val_part, "validation split").astype(np.int64),
                    "how": _name(fn),
                }
            except (InterfaceError, SubmissionError, TypeError, IndexError, ValueError) as exc:
                problems.append(f"{cand} on {type(data).__name__}: {str(exc).splitlines()[0][:200]}")
    raise sub.interface_error("split", tried=problems or None)


def latent_dtype(sub: Answer) -> dict:
    """The dtype of the ternary layer's latent weight (MLX answers; NumPy answers report their framework)."""
    if framework(sub) != "mlx":
        return {"framework": "numpy"}
    skip = _need_framework(sub)
    if skip:
        return skip
    layer = _layer(sub)(2 * GROUP, GROUP)
    dtype = getattr(layer.obj, layer.attr).dtype
    return {"framework": "mlx", "dtype": str(dtype).rsplit(".", 1)[-1], "how": layer.describe()}
