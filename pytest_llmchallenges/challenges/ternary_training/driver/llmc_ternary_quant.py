"""The answer's ternary projection and its ternary layer: calling the projection function, reading what it
returns (W_q, codes and scales in any common layout, a dict of those), and building the layer class around a
latent weight the grader sets, whose straight-through gradient is then found wherever the answer keeps it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.ternary_training.driver import llmc_ternary_frame as frame
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import Binding, parameters, qualified_name
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    import llmc_ternary_frame as frame  # type: ignore[no-redef]
    from llmc_api import Answer, Candidate, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import Binding, parameters, qualified_name  # type: ignore[no-redef]


# -- the projection function ---------------------------------------------------------------------------------------
def _group_size(n: int, groups: int) -> int:
    """The group size that splits ``n`` weights into ``groups`` groups: 128 with a partial last group if that fits."""
    return frame.GROUP if math.ceil(n / frame.GROUP) == groups else math.ceil(n / groups)


def expand_scales(scales: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
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


def read_projection(out: Any, w: np.ndarray, what: str) -> dict:
    """{projected, codes?, scales?, form} from what a projection returned."""
    if isinstance(out, dict):
        parts = [v for v in out.values() if frame.is_mx(v) or isinstance(v, (np.ndarray, list, float, int))]
    elif isinstance(out, (tuple, list)) and len(out) and not isinstance(out[0], (int, float)):
        parts = list(out)
    else:
        parts = [out]
    arrays = []
    for p in parts:
        try:
            arrays.append(frame.to_numpy(p, what).astype(np.float64))
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
        expanded, layout = expand_scales(small[0], w.shape)
        return {"projected": main * expanded, "codes": main, "scales": small[0], "form": f"codes x scales ({layout})"}
    if _is_codes(main) and not small and np.max(np.abs(w)) > 2:
        return {"projected": main, "codes": main, "form": "codes only"}
    result = {"projected": main, "form": "projected weights"}
    if small:
        result["scales"] = small[0]
    return result


def call_quantizer(sub: Answer, fn: Callable[..., Any], w: np.ndarray) -> dict:
    """The answer's own group size is what is graded: 128 is passed only where the function requires a value.
    A callable without an inspectable signature (``mx.custom_function``) takes the weight by position."""
    values = frame.with_required_group(fn, {"w": frame.like(sub, w.astype(np.float32))})
    binding = frame.bind_named(fn, values, ["w"]) if parameters(fn) else Binding(fn, (values["w"],), {}, ("w",))
    return read_projection(sub.invoke(binding), w, qualified_name(fn))


# -- the ternary layer ---------------------------------------------------------------------------------------------
class Layer:
    """An instance of the answer's ternary layer with its latent weight set from the grader's matrix."""

    def __init__(self, sub: Answer, cls: type, in_features: int, out_features: int) -> None:
        self.sub, self.cls = sub, cls
        values = frame.with_required_group(cls, {"in": in_features, "out": out_features, "bias": False})
        self.obj = sub.invoke(frame.bind_named(cls, values, ["in", "out"]))
        self.shape = (out_features, in_features)
        self.attr, self.transposed = self._weight_attr()

    def _arrays(self) -> dict[str, Any]:
        if hasattr(self.obj, "trainable_parameters") and hasattr(self.obj, "items"):  # an mlx.nn.Module
            return {k: v for k, v in self.obj.items() if frame.is_mx(v)}
        return {k: v for k, v in vars(self.obj).items() if isinstance(v, np.ndarray)}

    def _weight_attr(self) -> tuple[str, bool]:
        out_f, in_f = self.shape
        hits = []
        for name, value in self._arrays().items():
            shape = tuple(value.shape)
            if (
                shape in ((out_f, in_f), (in_f, out_f))
                and not frame.GRAD_NAME.search(name)
                and not frame.BUFFER.search(name)
            ):
                hits.append((not frame.WEIGHT_NAME.match(name.lower()), name, shape != (out_f, in_f)))
        if not hits:
            raise InterfaceError(
                f"{self.cls.__name__}: no attribute holds a ({out_f}, {in_f}) latent weight "
                f"(arrays: {sorted(self._arrays())})"
            )
        _, name, transposed = sorted(hits)[0]
        return name, transposed

    def set_weight(self, w: np.ndarray) -> None:
        arr = (w.T if self.transposed else w).astype(np.float32)
        setattr(self.obj, self.attr, frame.like(self.sub, np.ascontiguousarray(arr)))

    def forward(self, x: np.ndarray) -> Any:
        return self.sub.call(frame.forward(self.obj), frame.like(self.sub, x.astype(np.float32)))

    def projected(self, w: np.ndarray) -> np.ndarray:
        """W_q (out, in) read off the layer: its output for the identity matrix is W_q transposed."""
        self.set_weight(w)
        eye = np.eye(self.shape[1], dtype=np.float32)
        return frame.to_numpy(self.forward(eye), "layer output").T

    def describe(self) -> str:
        layout = ", stored (in, out)" if self.transposed else ""
        return f"class {self.cls.__name__} (weight attribute {self.attr!r}{layout})"


def layer_class(
    sub: Answer, in_features: int = 2 * frame.GROUP, out_features: int = frame.GROUP
) -> Callable[[int, int], Layer]:
    """A factory of the answer's ternary layer: the first layer class (llmc_probe's rule) whose instance maps a
    (2, in) input to a (2, out) output."""

    def make(cand: Candidate) -> type:
        cls = frame.load(cand)
        if not isinstance(cls, type):
            raise InterfaceError(f"{cls!r} is not a class")
        return cls

    def probe(cls: type) -> None:
        layer = Layer(sub, cls, in_features, out_features)
        out = frame.to_numpy(layer.forward(np.ones((2, in_features), np.float32)), "layer output")
        if out.shape != (2, out_features):
            raise InterfaceError(f"{cls.__name__}: output shape {out.shape} for input (2, {in_features})")

    cls, _ = sub.drive("layer", make, probe)
    return lambda i, o: Layer(sub, cls, i, o)


def find_weight_grad(layer: Layer, out: Any, before: dict) -> tuple[np.ndarray, str]:
    """The latent weight's gradient after a NumPy layer's backward: in its return value, else in the attribute
    (or dict entry) of the weight's shape that the backward changed, gradient-like names first."""
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
                    candidates.append((not frame.GRAD_NAME.search(label), label, v))
    if not candidates:
        raise InterfaceError(
            f"after {layer.cls.__name__}.backward no array of shape {want} holds the weight gradient "
            f"(attributes: {sorted(vars(layer.obj))})"
        )
    _, label, value = sorted(candidates, key=lambda c: (c[0], c[1]))[0]
    return value.astype(np.float64), f"attribute {label}"
