"""Driver for the flash_attention challenge (tiled forward with online softmax): adaptation only, no judging.

Answers to this prompt come as a function ``flash_attention_fwd(Q, K, V, tile_size, causal=True)`` under
varied names and parameter names (``block_size``, ``Br``/``Bc``, ``is_causal`` ...), or as a class that takes
the tile size and the causal flag in its constructor and attends in ``forward``/``__call__``. The output may
be O alone, or (O, cache) / a dict holding O, as some answers reuse a forward written for a backward pass.

The flash_attention_bwd driver reuses :class:`AttentionForward` and the helpers below for its forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child import llmc_bind
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError, Role
    from pytest_llmchallenges.child.llmc_entry import entry
except ImportError:  # inside the child, where this folder is on sys.path
    import llmc_bind  # type: ignore[no-redef]
    from llmc_api import Answer, Candidate, InterfaceError, Role  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]

ROLES = {
    "fwd": Role(
        prescribed=["flash_attention_fwd"],
        patterns=[
            r"flash.*(fwd|forward)",
            r"(tiled|online|block).*(attention|attn)",
            r"(attention|attn).*(fwd|forward)",
            r"^flash_?(attention|attn)",
            r"^(forward|fwd|__call__|attend|attention)$",
        ],
        kind="any",
        min_params=3,
        description="flash_attention_fwd(Q, K, V, tile_size, causal=True)",
    ),
}

PATTERNS = {
    "q": r"^(q|qs|query|queries|q_?(in|mat|all)?|xq)$",
    "k": r"^(k|ks|key|keys|k_?(in|mat|all)?|xk)$",
    "v": r"^(v|vs|value|values|v_?(in|mat|all)?|xv)$",
    "tile": r"(tile|block|chunk|^t$|^b_?[rcq]$|^b_?(k|kv)$|^t_?(q|k|kv)$|^bs$|^size$)",
    "causal": r"causal",
}
OUTPUT_KEYS = r"^(o|out|output|outputs|result|attn_?out(put)?|attention_?out(put)?)$"
FWD_METHODS = r"^(forward|fwd|__call__|call|attend|attention|apply|run|compute)$"


def bind(
    fn: Callable[..., Any], values: dict[str, Any], patterns: dict[str, str], order: list[str]
) -> llmc_bind.Binding:
    """Arguments for ``fn`` (llmc_bind.bind); every tile-like parameter, e.g. both Br and Bc, gets the tile size."""
    return llmc_bind.bind(fn, values, patterns, order, reusable=("tile",))


def accepts(fn: Callable[..., Any], key: str) -> bool:
    return any(re.search(PATTERNS[key], p.name.lower()) for p in llmc_bind.parameters(fn))


def split_output(value: Any, shape: tuple[int, ...], what: str) -> tuple[np.ndarray, Any]:
    """(O, the rest) from O itself, (O, cache, ...) or a dict holding O; InterfaceError naming what came back.

    The rest is None for a bare O, the dict itself for a dict, the other item (or a tuple of the others) for
    a sequence."""
    if isinstance(value, dict):
        key = next((k for k in value if isinstance(k, str) and re.match(OUTPUT_KEYS, k.lower())), None)
        if key is None:
            raise InterfaceError(f"{what} returned a dict without an output entry (keys: {sorted(map(str, value))})")
        return split_output(value[key], shape, what)[0], value
    if isinstance(value, (tuple, list)):
        index = next((i for i, v in enumerate(value) if not isinstance(v, (dict, str)) and _shape(v) == shape), None)
        if index is not None:
            rest = [v for i, v in enumerate(value) if i != index]
            return Answer.array(value[index], what), (rest[0] if len(rest) == 1 else tuple(rest) or None)
        if _shape(value) == shape:
            return Answer.array(value, what), None
        shapes = [_shape(v) for v in value]
        raise InterfaceError(f"{what} returned a {type(value).__name__} of shapes {shapes}, none is {shape}")
    arr = Answer.array(value, what)
    if arr.shape != shape:
        raise InterfaceError(f"{what} returned shape {arr.shape}, expected {shape} (B, H, N, D)")
    return arr, None


def find_output(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    return split_output(value, shape, what)[0]


def _shape(value: Any) -> tuple[int, ...] | None:
    try:
        return tuple(np.shape(value))
    except (ValueError, TypeError):
        return None


class AttentionForward:
    """One forward candidate, made callable as ``call(Q, K, V, tile_size, causal) -> (raw output, instance)``.

    A function is called with its arguments bound by name. A class is instantiated with the tile size and
    causal flag where its constructor takes them, then its forward method is called; ``Class.method``
    candidates work the same way. The instance is returned so that a backward method can use its state.
    """

    def __init__(self, sub: Answer, cand: Candidate) -> None:
        self.sub = sub
        self.label = str(cand)
        owner, _, method = cand.name.rpartition(".")
        self.fn: Any = None
        if owner:
            self.cls: Any = sub.load(cand.file, owner)  # the answer's class, or None for a function
            self.method = method
        else:
            obj = cand.load()
            self.cls = obj if isinstance(obj, type) else None
            self.method = _method_of(obj, FWD_METHODS) if self.cls else ""
            self.fn = None if self.cls else obj
        if self.cls is not None and not self.method:
            raise InterfaceError(f"class {self.label} has no forward/__call__ method")

    def instance(self, tile_size: int, causal: bool | None) -> Any:
        return construct(self.sub, self.cls, tile_size, causal)

    def __call__(
        self, Q: np.ndarray, K: np.ndarray, V: np.ndarray, tile_size: int, causal: bool | None
    ) -> tuple[Any, Any]:
        obj = self.instance(tile_size, causal) if self.cls is not None else None
        fn = getattr(obj, self.method) if obj is not None else self.fn
        values: dict[str, Any] = {"q": Q, "k": K, "v": V, "tile": tile_size}
        if causal is not None:
            if not accepts(fn, "causal") and not (obj is not None and accepts(self.cls.__init__, "causal")):
                if causal is False:
                    raise InterfaceError(f"{self.label} takes no causal flag, so it cannot be asked for non-causal")
            else:
                values["causal"] = causal
        if obj is not None and accepts(self.cls.__init__, "tile"):
            values.pop("tile")
        return self.sub.invoke(bind(fn, values, PATTERNS, ["q", "k", "v", "tile"])), obj


def _method_of(cls: type, pattern: str) -> str:
    names = [n for n in dir(cls) if callable(getattr(cls, n, None)) and re.match(pattern, n)]
    own = [n for n in names if n != "__call__"] or [n for n in names if "__call__" in cls.__dict__]
    return own[0] if own else ""


def probe_inputs(dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tiny (1, 2, 8, 4) problem: enough to learn a calling convention, cheap for any implementation."""
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal((1, 2, 8, 4)).astype(dtype) for _ in range(3))  # type: ignore[return-value]


def construct(sub: Answer, cls: type, tile_size: int, causal: bool | None) -> Any:
    """An instance of a submission's class, given the tile size and causal flag where its constructor asks."""
    values: dict[str, Any] = {"tile": tile_size}
    if causal is not None:
        values["causal"] = causal
    return sub.invoke(bind(cls, values, {k: PATTERNS[k] for k in values}, []))


_ADAPTERS: dict[int, AttentionForward] = {}


def attention_forward(sub: Answer) -> AttentionForward:
    """The submission's forward, probed once per process on a tiny causal problem."""
    if id(sub) not in _ADAPTERS:

        def probe(fwd: AttentionForward) -> None:
            Q, K, V = probe_inputs()
            find_output(fwd(Q, K, V, 4, None)[0], Q.shape, fwd.label)

        _ADAPTERS[id(sub)] = sub.drive("fwd", lambda c: AttentionForward(sub, c), probe)[0]
    return _ADAPTERS[id(sub)]


@entry
def forward(sub: Answer, Q: np.ndarray, K: np.ndarray, V: np.ndarray, tile_size: int, causal: bool | None = None):
    """O = attention(Q, K, V) as the submission computes it; causal=None leaves the submission's default."""
    fwd = attention_forward(sub)
    sub.ready()
    return find_output(fwd(Q, K, V, tile_size, causal)[0], Q.shape, fwd.label)


@entry
def forward_many(sub: Answer, cases: list[dict[str, Any]]) -> list[np.ndarray]:
    """forward() on several cases {Q, K, V, tile_size, causal} in one child (saves a process start each)."""
    fwd = attention_forward(sub)
    sub.ready()
    outs = []
    for c in cases:
        raw, _ = fwd(c["Q"], c["K"], c["V"], c["tile_size"], c.get("causal"))
        outs.append(find_output(raw, c["Q"].shape, fwd.label))
    return outs


def seeded_inputs(seed: int, shape: tuple[int, ...], dtype: str, count: int = 3) -> list[np.ndarray]:
    """Inputs built identically here and in the grading process (same generator, same order)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape)).astype(dtype) for _ in range(count)]


@entry
def forward_memory(sub: Answer, seed: int, shape: list[int], dtype: str, tile_size: int) -> dict[str, Any]:
    """A large causal forward measured from outside: inputs are built and the code warmed up before
    ``sub.ready()``. Returns all of O (no copy where it is already float64): the grading process picks the
    rows it spot-checks after the result has arrived, so nothing in this frame tells the submission which."""
    fwd = attention_forward(sub)
    Q, K, V = seeded_inputs(seed, tuple(shape), dtype)
    sub.ready()
    raw, _ = fwd(Q, K, V, tile_size, True)
    out = find_output(raw, Q.shape, fwd.label)
    return {"O": np.asarray(out, dtype=np.float64)}
