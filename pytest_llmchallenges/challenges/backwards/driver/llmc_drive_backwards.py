"""Driver for the backwards challenge (LayerNorm forward/backward in NumPy): adaptation only, no judging.

Real answers come in two shapes, and both are driven through one small adapter interface:

- a function pair: ``forward(x, gamma, beta, eps) -> (y, cache)`` and ``backward(dy, cache) -> grads``, under
  varied names and argument orders, with the cache a tuple, a dict or an object, or spread over several return
  values that the backward takes back one by one;
- a class holding gamma/beta (``weight``/``bias``...) with ``forward(x)`` and ``backward(dy)`` methods, which
  returns dx and keeps dgamma/dbeta as attributes or in a grads dict.

Arguments are bound by parameter name (llmc_bind); eps is always passed explicitly where the API lets it be
passed. Which adapter drives the answer is decided by the toolkit's probe rule (llmc_probe).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError, Role, SubmissionError
    from pytest_llmchallenges.child.llmc_bind import Binding, bind, parameters
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, Candidate, InterfaceError, Role, SubmissionError  # type: ignore[no-redef]
    from llmc_bind import Binding, bind, parameters  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]

ROLES = {
    "forward": Role(
        prescribed=["layer_norm_forward", "layernorm_forward", "layer_norm_fwd", "layernorm_fwd", "ln_forward"],
        patterns=[r"(layer_?norm|^ln).*(forward|fwd)", r"(forward|fwd).*(layer_?norm|ln$)", r"^(forward|fwd)$"],
        kind="function",
        min_params=1,
        description="LayerNorm forward function (x, gamma, beta, eps) -> (y, cache)",
    ),
    "backward": Role(
        prescribed=["layer_norm_backward", "layernorm_backward", "layer_norm_bwd", "layernorm_bwd", "ln_backward"],
        patterns=[r"(layer_?norm|^ln).*(backward|bwd|grad)", r"(backward|bwd).*(layer_?norm|ln$)", r"^(backward|bwd)$"],
        kind="function",
        min_params=1,
        description="LayerNorm backward function (dy, cache) -> (dx, dgamma, dbeta)",
    ),
    "layer": Role(
        prescribed=["LayerNorm", "LayerNormalization", "LayerNormManual", "LayerNormNumpy"],
        patterns=[r"layer_?norm", r"^ln$", r"norm"],
        kind="class",
        description="LayerNorm class with forward and backward methods",
    ),
}

_X = r"^(x|xs|x_?in|inp|inputs?|a|h|z|data|activations?|hidden(_states)?)$"
_GAMMA = r"^(gamma|g|w|weight|weights|scale|ln_?w|ln_?weight)$"
_BETA = r"^(beta|b|bias|shift|offset|ln_?b|ln_?bias)$"
_EPS = r"^(eps|epsilon|variance_epsilon|ln_?eps)$"
_DY = r"^(dy|dout|d_?out(put)?|grad|grads?_?(y|out(put)?)?|dl_?dy|upstream(_grad)?|g|delta|d_?l_?d_?y|gy|dy_?in)$"
_CACHE = r"(cache|ctx|context|saved|intermediates?|stash|state|store)"
_DIM = (
    r"^(d|dim|dims|d_model|features|num_features|normalized_shape|norm_shape|hidden(_size|_dim)?|size|n_?embd"
    r"|embed_dim|feature_dim|n|channels|shape|ndim|d_?in)$"
)
_FWD_METHOD = r"^(forward|fwd|__call__|call|apply|run)$"
_BWD_METHOD = r"^(backward|bwd|backprop|grad|gradients?|backward_pass)$"
_GRAD_NAMES = {
    "dx": r"^(d_?x|grad_?x|x_?grad|dinput|d_?in(put)?|grad_?in(put)?|input_?grad|dl_?dx|x)$",
    "dgamma": r"^(d_?gamma|grad_?gamma|gamma_?grad|d_?weight|grad_?weight|weight_?grad|d_?w|dl_?dgamma|gamma|weight|w|g"
    r"|dg|d_?scale)$",
    "dbeta": r"^(d_?beta|grad_?beta|beta_?grad|d_?bias|grad_?bias|bias_?grad|d_?b|db|dl_?dbeta|beta|bias|b)$",
}

_GRAD_ATTRS = {
    "dgamma": r"^(d_?gamma|grad_?gamma|gamma_?grad|d_?weight|grad_?weight|weight_?grad|d_?w|dg)$",
    "dbeta": r"^(d_?beta|grad_?beta|beta_?grad|d_?bias|grad_?bias|bias_?grad|d_?b|db)$",
}


_params = parameters


def _match(name: str, pattern: str) -> bool:
    return re.search(pattern, name.lower()) is not None


def _bind(fn: Callable[..., Any], values: dict[str, Any], patterns: dict[str, str], order: list[str]) -> Binding:
    return bind(fn, values, patterns, order)


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))


def _grads_from(value: Any, what: str) -> dict[str, Any]:
    """(dx, dgamma, dbeta) from a tuple, a dict or an object with named attributes."""
    if isinstance(value, dict):
        found = {}
        for key, pat in _GRAD_NAMES.items():
            hit = next((k for k in value if isinstance(k, str) and _match(k, pat)), None)
            if hit is not None:
                found[key] = value[hit]
        if len(found) == 3:
            return found
        raise InterfaceError(f"{what} returned a dict with keys {sorted(map(str, value))}: cannot tell dx/dgamma/dbeta")
    if isinstance(value, (tuple, list)):
        if len(value) == 3:
            return dict(zip(("dx", "dgamma", "dbeta"), value, strict=True))
        if len(value) == 2 and isinstance(value[1], dict):
            rest = _grads_from({"dx": value[0], **value[1]}, what)
            return rest
        raise InterfaceError(f"{what} returned a sequence of {len(value)} items, expected (dx, dgamma, dbeta)")
    if hasattr(value, "__dict__") and not isinstance(value, np.ndarray):
        return _grads_from(dict(vars(value)), what)
    raise InterfaceError(f"{what} returned {type(value).__name__}, expected (dx, dgamma, dbeta)")


class FunctionPair:
    """forward(x, gamma, beta, eps) -> (y, cache...) and backward(dy, cache...) -> grads."""

    def __init__(self, sub: Answer, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        self.sub, self.fwd, self.bwd = sub, fwd, bwd

    def describe(self) -> str:
        return f"functions {_name(self.fwd)} / {_name(self.bwd)}"

    def forward(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> tuple[Any, Any]:
        values = {"x": x, "gamma": gamma, "beta": beta, "eps": eps}
        binding = _bind(
            self.fwd, values, {"x": _X, "gamma": _GAMMA, "beta": _BETA, "eps": _EPS}, ["x", "gamma", "beta", "eps"]
        )
        out = self.sub.invoke(binding)
        if isinstance(out, dict):
            key = next((k for k in out if isinstance(k, str) and re.match(r"^(y|out(put)?|result)$", k.lower())), None)
            if key is None:
                raise InterfaceError(f"{_name(self.fwd)} returned a dict without an output entry: {sorted(out)}")
            return out[key], {"kind": "dict", "cache": out, **values}
        if isinstance(out, (tuple, list)) and len(out) >= 2 and not _looks_like_rows(out, x):
            return out[0], {"kind": "parts", "parts": list(out[1:]), **values}
        return out, {"kind": "none", **values}

    def backward(self, dy: np.ndarray, state: dict[str, Any]) -> dict[str, Any]:
        params = _params(self.bwd)
        names = [p.name for p in params]
        values = {"dy": dy, "x": state["x"], "gamma": state["gamma"], "beta": state["beta"], "eps": state["eps"]}
        patterns = {"dy": _DY, "x": _X, "gamma": _GAMMA, "beta": _BETA, "eps": _EPS}
        if state["kind"] == "parts":
            parts = state["parts"]
            required = [p for p in params if p.default is p.empty]
            cache_named = [n for n in names if _match(n, _CACHE)]
            if len(parts) == 1 or cache_named:
                values["cache"] = parts[0] if len(parts) == 1 else tuple(parts)
                patterns["cache"] = _CACHE
            elif len(required) - 1 == len(parts):
                # backward(dy, a, b, c) taking back what forward returned after y, in order
                args = (dy, *parts) if _match(names[0], _DY) or not _match(names[-1], _DY) else (*parts, dy)
                with guess("the forward's extra outputs passed back one by one"):
                    return _grads_from(self.sub.call(self.bwd, *args), _name(self.bwd))
            else:
                values["cache"] = tuple(parts)
                patterns["cache"] = _CACHE
        elif state["kind"] == "dict":
            values["cache"] = state["cache"]
            patterns["cache"] = _CACHE
        binding = _bind(self.bwd, values, patterns, ["dy", "cache", "x", "gamma", "beta", "eps"])
        return _grads_from(self.sub.invoke(binding), _name(self.bwd))


def _looks_like_rows(out: Any, x: np.ndarray) -> bool:
    """A forward that returned y as a nested list rather than (y, cache)."""
    try:
        return np.asarray(out, dtype=float).shape == x.shape
    except (TypeError, ValueError):
        return False


class LayerObject:
    """An instance holding gamma/beta, with forward(x) and backward(dy) methods."""

    def __init__(self, sub: Answer, cls: type) -> None:
        self.sub, self.cls = sub, cls
        methods = {n: getattr(cls, n) for n in dir(cls) if callable(getattr(cls, n, None))}
        fwd = next((n for n in methods if _match(n, _FWD_METHOD) and n != "__call__"), None)
        if fwd is None and "__call__" in cls.__dict__:
            fwd = "__call__"
        bwd = next((n for n in methods if _match(n, _BWD_METHOD)), None)
        if fwd is None or bwd is None:
            raise InterfaceError(f"class {cls.__name__} has no forward/backward method pair")
        self.fwd_name, self.bwd_name = fwd, bwd

        # forward(x, gamma, beta, eps) as a (static) method: a function pair that happens to live in a class
        takes_params = any(_match(p.name, _GAMMA) for p in _params(getattr(cls, self.fwd_name)))
        self.pair: FunctionPair | None = None
        if takes_params:
            obj = cls if self._static(self.fwd_name) else self._construct(None)
            self.pair = FunctionPair(sub, getattr(obj, self.fwd_name), getattr(obj, self.bwd_name))

    def _static(self, name: str) -> bool:
        return isinstance(inspect.getattr_static(self.cls, name, None), (staticmethod, classmethod))

    def describe(self) -> str:
        return f"class {self.cls.__name__} ({self.fwd_name} / {self.bwd_name})"

    def _construct(self, gamma: np.ndarray | None, beta: np.ndarray | None = None, eps: float = 1e-5) -> Any:
        values: dict[str, Any] = {"eps": eps}
        if gamma is not None and beta is not None:
            values.update(dim=gamma.shape[0], gamma=gamma.copy(), beta=beta.copy())
        patterns = {"dim": _DIM, "eps": _EPS, "gamma": _GAMMA, "beta": _BETA}
        return self.sub.invoke(_bind(self.cls, values, patterns, ["dim", "eps"]))

    def _make(self, gamma: np.ndarray, beta: np.ndarray, eps: float) -> Any:
        obj = self._construct(gamma, beta, eps)
        self._set(obj, _GAMMA, gamma, "gamma")
        self._set(obj, _BETA, beta, "beta")
        for name in list(vars(obj)):
            if _match(name, _EPS):
                setattr(obj, name, eps)
        return obj

    @staticmethod
    def _set(obj: Any, pattern: str, value: np.ndarray, what: str) -> None:
        attrs = vars(obj)
        for name, current in attrs.items():
            if _match(name, pattern) and np.shape(current) == value.shape:
                setattr(obj, name, value.copy())
                return
        for container in attrs.values():
            if isinstance(container, dict):
                for key, current in container.items():
                    if isinstance(key, str) and _match(key, pattern) and np.shape(current) == value.shape:
                        container[key] = value.copy()
                        return
        raise InterfaceError(f"cannot find where an instance keeps {what} (attributes: {sorted(attrs)})")

    def forward(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> tuple[Any, Any]:
        if self.pair is not None:
            return self.pair.forward(x, gamma, beta, eps)
        obj = self._make(gamma, beta, eps)
        method = getattr(obj, self.fwd_name)
        values = {"x": x, "gamma": gamma, "beta": beta, "eps": eps}
        out = self.sub.invoke(_bind(method, values, {"x": _X, "gamma": _GAMMA, "beta": _BETA, "eps": _EPS}, ["x"]))
        if isinstance(out, (tuple, list)) and len(out) == 2 and not _looks_like_rows(out, x):
            return out[0], {"obj": obj, "cache": out[1]}
        return out, {"obj": obj, "cache": None}

    def backward(self, dy: np.ndarray, state: dict[str, Any]) -> dict[str, Any]:
        if self.pair is not None:
            return self.pair.backward(dy, state)
        obj = state["obj"]
        method = getattr(obj, self.bwd_name)
        values = {"dy": dy}
        patterns = {"dy": _DY}
        if state["cache"] is not None:
            values["cache"] = state["cache"]
            patterns["cache"] = _CACHE
        out = self.sub.invoke(_bind(method, values, patterns, ["dy", "cache"]))
        if isinstance(out, (tuple, list, dict)) and not _looks_like_rows(out, dy):
            return _grads_from(out, f"{self.cls.__name__}.{self.bwd_name}")
        grads = {"dx": out}
        for key in ("dgamma", "dbeta"):
            grads[key] = self._grad_attr(obj, key)
        return grads

    def _grad_attr(self, obj: Any, key: str) -> Any:
        attrs = vars(obj)
        for name, value in attrs.items():
            if _match(name, _GRAD_ATTRS[key]):
                return value
        for name, container in attrs.items():
            if isinstance(container, dict) and re.search(r"grad|^d", name.lower()):
                for k, value in container.items():
                    if isinstance(k, str) and _match(k, _GRAD_NAMES[key]):
                        return value
        raise InterfaceError(
            f"{self.cls.__name__}.{self.bwd_name} returned only dx and no attribute holds {key} "
            f"(attributes: {sorted(attrs)})"
        )


def _probe(adapter: Any) -> Any:
    """Run an adapter once on a tiny input; it must produce y and dx of the input's shape."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    y, state = adapter.forward(x, gamma, beta, 1e-5)
    if np.shape(y) != x.shape:
        raise InterfaceError(f"{adapter.describe()}: forward output has shape {np.shape(y)}, expected {x.shape}")
    grads = adapter.backward(np.ones_like(x), state)
    if np.shape(grads["dx"]) != x.shape:
        raise InterfaceError(f"{adapter.describe()}: dx has shape {np.shape(grads['dx'])}, expected {x.shape}")
    return adapter


def _attempts(sub: Answer) -> list[Attempt]:
    """Ways to drive the answer, most likely first: function pairs (same file first), then classes."""
    manifest = sub.manifest
    if "layer" in manifest and not ({"forward", "backward"} & set(manifest)):
        layer = sub.candidates("layer")[0]
        return [Attempt(str(layer), partial(_layer_object, sub, layer), layer.documented)]
    fwds = [c for c in sub.candidates("forward") if "." not in c.name or "forward" in manifest][:4]
    bwds = [c for c in sub.candidates("backward") if "." not in c.name or "backward" in manifest][:4]
    pairs = sorted(
        ((f, b) for f in fwds for b in bwds), key=lambda fb: (fb[0].file != fb[1].file, -fb[0].score - fb[1].score)
    )
    attempts = [
        Attempt(f"{f} + {b}", partial(_function_pair, sub, f, b), f.documented and b.documented) for f, b in pairs
    ]
    for c in sub.candidates("layer")[:4]:
        attempts.append(Attempt(str(c), partial(_layer_object, sub, c), c.documented))
    return attempts


def _function_pair(sub: Answer, fwd: Candidate, bwd: Candidate) -> FunctionPair:
    return FunctionPair(sub, fwd.load(), bwd.load())


def _layer_object(sub: Answer, cand: Candidate) -> LayerObject:
    return LayerObject(sub, cand.load())


_CACHED: dict[int, Any] = {}


def _adapter(sub: Answer) -> Any:
    if id(sub) not in _CACHED:
        hint = (
            'or [roles] forward = "file.py:fwd_name" and backward = "file.py:bwd_name", or layer = "file.py:ClassName"'
        )
        _CACHED[id(sub)] = first_working(
            _attempts(sub), _probe, lambda tried: sub.interface_error("forward", tried=tried or None, hint=hint)
        )[0]
    return _CACHED[id(sub)]


def _plain(grads: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: Answer.array(v, k) for k, v in grads.items()}


@entry
def gradients(sub: Answer, cases: list[dict[str, Any]], allow_errors: bool = False) -> list[dict[str, Any]]:
    """For each case {x, gamma, beta, eps, dy}: {y, dx, dgamma, dbeta}, or {error} when the submission raised
    and ``allow_errors`` is set (used for input ranks the prompt does not require)."""
    adapter = _adapter(sub)
    sub.ready()
    results: list[dict[str, Any]] = []
    for case in cases:
        try:
            y, state = adapter.forward(case["x"], case["gamma"], case["beta"], case["eps"])
            grads = adapter.backward(case["dy"], state)
            results.append({"y": Answer.array(y, "y"), **_plain(grads)})
        except SubmissionError as exc:
            if not allow_errors:
                raise
            results.append({"error": str(exc).splitlines()[0][:300]})
    return results


@entry
def finite_differences(sub: Answer, case: dict[str, Any], points: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
    """The submission's gradients at ``case`` and its forward outputs at the perturbed ``points``."""
    adapter = _adapter(sub)
    _, state = adapter.forward(case["x"], case["gamma"], case["beta"], case["eps"])
    grads = _plain(adapter.backward(case["dy"], state))
    ys = [Answer.array(adapter.forward(x, g, b, case["eps"])[0], "y") for x, g, b in points]
    return {"grads": grads, "ys": ys}
