"""The weights a kv session computes with, and the observation of projection work (kv driver).

Weight matrices handed to (or read from) the answer are counting views (same values and dtype) that tally
the vectors multiplied through them, so the grader can see whether past tokens' keys and values are projected
again at every step. Weights an answer creates itself are found by their attribute names (``W_q``,
``q_proj``, Linear-like objects with ``.weight``/``.bias``, fused ``W_qkv``) and sent back to the oracle.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import InterfaceError
    from pytest_llmchallenges.child.llmc_bind import qualified_name
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import InterfaceError  # type: ignore[no-redef]
    from llmc_bind import qualified_name  # type: ignore[no-redef]

WEIGHT_ATTR = {
    "wq": r"^_?(w_?q|q|to_?q|q_?(proj|linear|lin)(_weight)?|q_?weight|w_?query|query(_(weight|proj|linear))?|wq"
    r"|linear_?q)$",
    "wk": r"^_?(w_?k|k|to_?k|k_?(proj|linear|lin)(_weight)?|k_?weight|w_?key|key(_(weight|proj|linear))?|wk"
    r"|linear_?k)$",
    "wv": r"^_?(w_?v|v|to_?v|v_?(proj|linear|lin)(_weight)?|v_?weight|w_?value|value(_(weight|proj|linear))?|wv"
    r"|linear_?v)$",
    "wo": r"^_?(w_?o|to_?out|o_?(proj|linear|lin)(_weight)?|o_?weight|w_?out|out_?(proj|linear)(_weight)?|wo"
    r"|w_?proj|c_?proj|linear_?o)$",
}
BIAS_ATTR = r"^_?(b_?([qkvo])|([qkvo])_?(proj_)?bias|b_?(query|key|value|out))$"

TALLY: Counter = Counter()  # (layer, "wk" | "wv" | ...) -> vectors multiplied through that matrix


def plain(value: Any) -> Any:
    if isinstance(value, Counted):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
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
            kwargs["out"] = plain(kwargs["out"])
        return getattr(ufunc, method)(*plain(inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in (np.dot, np.matmul, np.einsum, np.tensordot, np.inner, np.vdot):
            self._count(args)
        return func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})


def counted(w: np.ndarray, layer: int, concept: str) -> Counted:
    view = np.asarray(w).view(Counted)
    view.key = (layer, concept)
    return view


def dict_keys_read(fn: Any, param: str) -> list[str]:
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


def weight_key(key: str) -> str | None:
    low = key.lower()
    for concept, pat in WEIGHT_ATTR.items():
        if re.search(pat, low):
            return concept
    m = re.search(BIAS_ATTR, low)
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
            keys = dict_keys_read(fn, name) or ["wq", "wk", "wv", "wo"]
            weights = self.counted(layer)
            out: dict[str, Any] = {}
            for key in keys:
                concept = weight_key(key)
                if concept is not None and concept.startswith("b"):
                    out[key] = np.zeros(self.d_model)
                elif concept is not None:
                    out[key] = weights[concept]
            if not any(weight_key(k) in ("wq", "wk", "wv") for k in out):
                what = f"{qualified_name(fn)}: cannot tell which keys its {name!r} dict needs"
                raise InterfaceError(f"{what} (read: {keys})")
            return out

        return make


def read_weights(obj: Any, layer: int, d_model: int) -> dict[str, np.ndarray]:
    """The projection matrices (and biases) an instance created itself, replaced by counting views of the
    same values; {} unless all of q, k, v were found. Attributes, dicts of them, Linear-like objects
    (``.weight``/``.bias``) and fused q|k|v matrices (``W_qkv``, ``c_attn``, ``in_proj``) count."""
    if not hasattr(obj, "__dict__"):
        return {}
    d = d_model
    found: dict[str, np.ndarray] = {}
    containers = [vars(obj)] + [v for v in vars(obj).values() if isinstance(v, dict)]
    for attrs in containers:
        for name, value in list(attrs.items()):
            if not isinstance(name, str):
                continue
            fused = bool(re.search(r"qkv|c_?attn|in_?proj", name.lower()))
            concept = "wqkv" if fused else weight_key(name)
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


def kv_rows(num_layers: int) -> int:
    return sum(TALLY[(layer, c)] for layer in range(num_layers) for c in ("wk", "wv", "wqkv"))
