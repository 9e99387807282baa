"""The answer's model: built from its own constructor at the grader's tiny Qwen3-style configuration (a config
object, a dict or keyword arguments, whichever it takes), else at its own default configuration when that is
small enough to train here; then every 2-D weight it holds, and how the logits move when a weight is swapped.

Whether a weight is ternary is measured, not read from class names: a latent matrix with the same group-of-128
projection must leave the logits unchanged, one with a different projection must move them.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.ternary_training.driver import llmc_ternary_frame as frame
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import BindError, parameters, qualified_name
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    import llmc_ternary_frame as frame  # type: ignore[no-redef]
    from llmc_api import Answer, Candidate, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import BindError, parameters, qualified_name  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]

MAX_PARAMETERS = 20_000_000  # a model built from an answer's own default configuration must train on CPU
NOT_A_MODEL = r"ternar.*(linear|embed)|bitlinear|rmsnorm|attention|mlp"
TINY = "built at the grader's tiny configuration"
MODEL_HINT = "the model must accept a configuration (vocab, hidden size, layers, heads) or default to a small one"


# -- configurations ------------------------------------------------------------------------------------------------
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


def _fill_config(cfg: Any, values: dict[str, Any]) -> Any:
    """Set every attribute of a config object (or dict) that matches a tiny-config name."""
    keys = list(cfg) if isinstance(cfg, dict) else list(vars(cfg))
    for attr in keys:
        key = next((k for k in values if re.search(frame.NAMES[k], attr.lower())), None)
        if key is not None:
            if isinstance(cfg, dict):
                cfg[attr] = values[key]
            else:
                setattr(cfg, attr, values[key])
    return cfg


def _config_by_parameters(sub: Answer, cls: Any, values: dict[str, Any]) -> Any:
    """The config class called with the tiny values: parameters named as in Qwen3's config.json take those,
    others the value their name matches."""
    named = _dict_config(values)
    kwargs: dict[str, Any] = {}
    for p in parameters(cls):
        key = next((k for k in values if re.search(frame.NAMES[k], p.name.lower())), None)
        if p.name in named:
            kwargs[p.name] = named[p.name]
        elif key is not None:
            kwargs[p.name] = values[key]
        elif p.default is p.empty and re.search(frame.NAMES["group"], p.name.lower()):
            kwargs[p.name] = frame.GROUP
        elif p.default is p.empty:
            raise InterfaceError(f"{qualified_name(cls)}: no tiny-config value for its parameter {p.name!r}")
    return sub.call(cls, **kwargs)


def _make_config(sub: Answer, cls: Any, values: dict[str, Any]) -> Any:
    """An instance of the answer's config class at the tiny size: ``from_dict`` (mlx_lm's convention) where it
    exists, else the class called with its own parameters."""
    attempts = []
    if callable(getattr(cls, "from_dict", None)):
        attempts.append(
            Attempt(f"{qualified_name(cls)}.from_dict", lambda: sub.call(cls.from_dict, _dict_config(values)))
        )
    attempts.append(Attempt(qualified_name(cls), partial(_config_by_parameters, sub, cls, values)))
    cfg, _ = first_working(attempts, lambda cfg: None, lambda tried: InterfaceError("; ".join(tried)))
    return _fill_config(cfg, values)


# -- building --------------------------------------------------------------------------------------------------------
def _sized_builds(sub: Answer, ctor: Any, vocab: int) -> list[tuple[str, Any]]:
    """(label, build) for each way of giving ``ctor`` the tiny configuration."""
    values = _config_values(vocab)
    builds: list[tuple[str, Callable[[], Any]]] = []
    for cand in sub.candidates("config")[:3]:

        def with_config(cand: Candidate = cand) -> Any:
            return sub.call(ctor, _make_config(sub, frame.load(cand), values))

        builds.append((f"{qualified_name(ctor)}({cand.name}(...))", with_config))
    try:
        bound = frame.bind_named(ctor, frame.with_required_group(ctor, values), [])
    except BindError:
        bound = None

    def with_kwargs() -> Any:  # without a binding, bind_named raises its BindError again: a failed probe
        return sub.invoke(bound or frame.bind_named(ctor, frame.with_required_group(ctor, values), []))

    def with_dict() -> Any:
        return sub.call(ctor, _fill_config(dict(_dict_config(values)), values))

    sized = bound is None or bound.args or bound.kwargs
    name = qualified_name(ctor)
    builds += [
        (f"{name}(**tiny config)" if sized else f"{name}() (its default configuration)", with_kwargs),
        (f"{name}(dict config)", with_dict),
    ]
    return builds


def _parameter_count(model: Any) -> int:
    return sum(int(np.prod(getattr(_get(c, k), "shape", ()))) for _, c, k in weights(model))


def _estimated_size(cfg: Any) -> int | None:
    """Parameters a configuration object (or dict) describes, from the sizes its field names give; None when it
    does not name vocabulary, width and depth. Read before building, so a NumPy model never allocates a default
    Qwen3-0.6B (600M weights) just to learn that it is too large."""
    fields = cfg if isinstance(cfg, dict) else vars(cfg) if hasattr(cfg, "__dict__") else {}
    sizes: dict[str, int] = {}
    for name, value in fields.items():
        key = next(
            (k for k in ("vocab", "hidden", "layers", "ffn") if re.search(frame.NAMES[k], str(name).lower())), None
        )
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


def _default_builds(sub: Answer, ctor: Any) -> list[tuple[str, Any]]:
    """The answer's own default configuration: the constructor without arguments, or given an instance of its
    config class made without arguments (rule: a model built from the answer's own configuration passes)."""
    builds = []
    name = qualified_name(ctor)
    if all(p.default is not p.empty for p in parameters(ctor)):

        def without_arguments() -> Any:
            for p in parameters(ctor):
                _small_enough(p.default, f"{name}'s default {p.name}")
            return sub.call(ctor)

        builds.append((f"{name}() (its default configuration)", without_arguments))
    for cand in sub.candidates("config")[:3]:

        def with_default(cand: Candidate = cand) -> Any:
            cls = frame.load(cand)
            if any(p.default is p.empty for p in parameters(cls)):
                raise InterfaceError(f"{cand.name} has required parameters")
            cfg = sub.call(cls)
            _small_enough(cfg, f"{cand.name}()")
            return sub.call(ctor, cfg)

        builds.append((f"{name}({cand.name}()) (its default configuration)", with_default))
    return builds


def _sized(sub: Answer, build: Any, ids: np.ndarray, vocab: int) -> tuple[Any, int]:
    with guess(TINY):
        model = build()
        logits(sub, model, ids, vocab)
    return model, vocab


def _default(sub: Answer, build: Any, ids: np.ndarray, vocab: int, documented: bool) -> tuple[Any, int]:
    with contextlib.nullcontext() if documented else guess("a name-pattern candidate built without arguments"):
        model = build()
        size = _parameter_count(model)
        if size > MAX_PARAMETERS:
            raise InterfaceError(f"{size:,} parameters, more than {MAX_PARAMETERS:,} can train here")
        return model, _model_vocab(sub, model, ids, vocab)


def _fails(exc: Exception) -> Any:
    raise exc


def _model_attempts(sub: Answer, ids: np.ndarray, vocab: int) -> Iterator[Attempt]:
    """Each model candidate at the tiny configuration in each way its constructor may take it (failed probes
    whatever they raise: the sizes are the grader's), then at its own default configuration."""
    ctors: list[tuple[Any, bool]] = []
    for cand in sub.candidates("model")[:6]:
        try:
            ctor = frame.load(cand)
        except Exception as exc:  # not loadable: an attempt that fails as it did
            yield Attempt(str(cand), partial(_fails, exc), cand.documented)
            continue
        if not callable(ctor) or re.search(NOT_A_MODEL, cand.name.lower()):
            continue
        ctors.append((ctor, cand.documented))
        for label, build in _sized_builds(sub, ctor, vocab):
            yield Attempt(label, partial(_sized, sub, build, ids, vocab), cand.documented)
    for ctor, documented in ctors:
        for label, build in _default_builds(sub, ctor):
            yield Attempt(label, partial(_default, sub, build, ids, vocab, documented), documented)


def build_model(sub: Answer, vocab: int) -> tuple[Any, str, int]:
    """(model, how it was built, its vocabulary): the tiny configuration where the constructor takes one, else
    the answer's own default configuration when it is small enough to train here."""
    ids = (np.arange(16) % vocab).reshape(1, 16).astype(np.int64)
    np.random.seed(0)  # answers initialise from the global generators: the same model on every run
    if frame.framework(sub) == "mlx":
        frame.mlx()[0].random.seed(0)  # type: ignore[index]
    (model, built_vocab, label), _ = first_working(
        _labelled(_model_attempts(sub, ids, vocab)),
        lambda built: None,
        lambda tried: sub.interface_error("model", tried[:8] or None, MODEL_HINT),
    )
    return model, label, built_vocab


def _labelled(attempts: Iterator[Attempt]) -> Iterator[Attempt]:
    """The attempts with their label added to what they build, for the report's "how"."""
    for a in attempts:
        yield Attempt(a.label, partial(_with_label, a), a.documented)


def _with_label(attempt: Attempt) -> tuple[Any, int, str]:
    model, vocab = attempt.make()
    return model, vocab, attempt.label


# -- running it --------------------------------------------------------------------------------------------------------
def _output(sub: Answer, model: Any, ids: np.ndarray) -> Any:
    out = sub.call(frame.forward(model), frame.like(sub, ids))
    out = out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(out, dict):
        out = next(v for k, v in out.items() if "logit" in str(k).lower())
    return out


def logits(sub: Answer, model: Any, ids: np.ndarray, vocab: int) -> np.ndarray:
    """The model's logits for ``ids``, (tokens, vocab); InterfaceError when the last axis is not the vocab."""
    arr = frame.to_numpy(_output(sub, model, ids), "model output").astype(np.float64)
    if arr.shape[-1] != vocab:
        raise InterfaceError(f"model output has shape {arr.shape}; expected logits with {vocab} on the last axis")
    return arr.reshape(-1, vocab)


def _model_vocab(sub: Answer, model: Any, ids: np.ndarray, least: int) -> int:
    """The vocabulary of a model built from the answer's own configuration: the last axis of its logits, which
    must hold the grader's token ids."""
    shape = tuple(getattr(_output(sub, model, ids), "shape", ()))
    if len(shape) < 2 or shape[-1] < least:
        raise InterfaceError(f"model output has shape {shape}; expected logits over at least {least} tokens")
    return int(shape[-1])


# -- its weights ---------------------------------------------------------------------------------------------------
def weights(model: Any) -> list[tuple[str, Any, Any]]:
    """(path, container, key) of every 2-D float array reachable from the model (MLX: its parameter tree)."""
    if hasattr(model, "trainable_parameters") and hasattr(model, "update"):
        from mlx.utils import tree_flatten

        flat: Any = tree_flatten(model.parameters())
        return [(name, model, name) for name, v in flat if v.ndim == 2]
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


def _set(container: Any, key: Any, value: np.ndarray, like_this: Any) -> None:
    if frame.is_mx(like_this):
        mx = frame.mlx()[0]  # type: ignore[index]
        new = mx.array(value.astype(np.float32)).astype(like_this.dtype)
        if hasattr(container, "trainable_parameters") and isinstance(key, str):
            from mlx.utils import tree_unflatten

            container.update(tree_unflatten([(key, new)]))
            return
        value = new
    else:
        like_this[...] = value.astype(like_this.dtype)  # in place: tied weights see the change too
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
    for j0 in range(0, n, frame.GROUP):
        blk = a[..., j0 : j0 + frame.GROUP]
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
        out[..., j0 : j0 + frame.GROUP] = codes * mag + z
    return np.moveaxis(out, -1, axis)


def weight_effects(sub: Answer, model: Any, vocab: int, ids: np.ndarray) -> list[dict]:
    """For each 2-D weight: how far the logits move (relative) under a reversed, and two same-projection, swaps."""
    base = logits(sub, model, ids, vocab)
    scale = float(np.abs(base).max()) or 1.0
    results = []
    for path, container, key in weights(model):
        if frame.BUFFER.search(str(key).lower()) and not frame.WEIGHT_NAME.match(str(key).lower()):
            continue
        original = _get(container, key)
        w = frame.to_numpy(original, path).astype(np.float64)
        entry: dict[str, Any] = {"path": path, "shape": list(w.shape), "owner": type(container).__name__}
        for label, make in (
            ("reversed", lambda w=w: w[::-1].copy()),
            ("same_projection_last", lambda w=w: same_projection(w, -1)),
            ("same_projection_first", lambda w=w: same_projection(w, 0)),
        ):
            _set(container, key, make(), _get(container, key))
            try:
                entry[label] = float(np.abs(logits(sub, model, ids, vocab) - base).max() / scale)
            finally:
                _set(container, key, w, _get(container, key))
            if entry["reversed"] == 0.0:  # not a weight of the forward pass (a cache, a gradient buffer)
                entry.update(same_projection_last=0.0, same_projection_first=0.0)
                break
        results.append(entry)
    return results
