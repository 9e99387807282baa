"""Driver for dflash_verify (tree-attention verification for speculative decoding): adaptation only.

The submission verifies draft trees against the *grader's* target model (llmc_models.MinimalLM, which is
tree-consistent), never against its own: only then is "equal to greedy decoding" a property of the verifier
alone. But a submission calls its target model in its own way (``model(tokens, mask)``,
``model.forward(ids, attn_mask=...)``, ``model.embed(tokens)`` then ``model.transformer_block(x, mask)``,
``model.tok_emb[tokens]``, a (1, L, V) batch, log-probabilities...). So the grader's model is passed in dressed
as the submission's own model class: :class:`TargetAdapter` subclasses that class (``isinstance`` checks pass)
without running its ``__init__``, and answers every method call by example: it calls the same method of a real
instance of the submission's model with the same arguments, only to see the *form* of the answer (shape,
logits or log-probs, hidden states or logits, dtype), and returns the grader's values in that form.
Embeddings and hidden states it hands out are tag vectors that name their token (and, after the block, the
logits there), so whatever the verifier does with them by plain indexing and concatenation stays traceable.

Where no verifier function is found, a generation loop (``speculative_generate(prompt, model, draft, max)``)
is driven instead, with the draft model a callable that serves the grader's trees.

What a cycle appended is read from ``(accepted_tokens, new_token)`` by the tree's structure alone (no oracle):
see :func:`appended_tokens`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from llmc_api import Answer, InterfaceError, Role
from llmc_models import MinimalLM

ROLES = {
    "mask": Role(
        prescribed=["build_tree_mask"],
        patterns=[r"tree.*mask", r"mask.*tree", r"build.*mask", r"(attn|attention).*mask"],
        kind="function",
        min_params=2,
        description="build_tree_mask(prompt_len, tree_parents) -> (P+N, P+N) mask",
    ),
    "verify": Role(
        prescribed=["verify_and_accept"],
        patterns=[r"verify.*accept", r"accept.*verif", r"verif.*tree", r"tree.*verif", r"^verify", r"verif"],
        kind="function",
        min_params=3,
        description="verify_and_accept(prompt_tokens, tree_tokens, tree_parents, target_model, temperature)",
    ),
    "generate": Role(
        prescribed=["speculative_generate", "speculative_decode", "speculative_decoding", "generate_speculative"],
        patterns=[r"specul.*(gen|decod)", r"(gen|decod).*specul", r"dflash.*(gen|decod)", r"tree.*(gen|decod)"],
        kind="function",
        min_params=2,
        description="a speculative generation loop (prompt, target_model, draft_model, max_tokens)",
    ),
    "model": Role(
        prescribed=["MinimalLM"],
        patterns=[r"minimal.*(lm|model|transformer)", r"target", r"(lm|model|transformer|gpt|llm)$"],
        kind="class",
        description="the target model class (MinimalLM)",
    ),
}

# parameter names of the verifier, the generation loop and the submission's model constructor
_P = {
    "prompt": r"prompt|prefix|context|generated|history|^(seq|sequence|input_ids|ids|tokens_so_far)$",
    "tokens": r"(tree|draft|cand|spec).*(tok|ids)|^(tokens|draft|candidates|nodes|tree)$",
    "parents": r"parent",
    "children": r"child",
    "model": r"model|target|^lm$|llm|^net$|transformer|verifier_lm",
    "temperature": r"^temp|temperature",
    "draft": r"draft|propos|drafter|tree_fn|tree_source|speculator",
    "max": r"max|budget|limit|length|^n$|num|steps|new",
}
_PRIORITY = ["parents", "children", "temperature", "draft", "tokens", "prompt", "model", "max"]
_TREE_PARAM = r"(draft_|spec_)?tree(_step)?|step|draft"
_POSITIONS = re.compile(r"pos|depth")
_POSITION_IDS = re.compile(r"pos")
_VOCAB = re.compile(r"vocab|n_?tokens|num_?tokens|^v$")
_DIM = re.compile(r"^(d|d_?model|dim|hidden(_size|_dim)?|n_?embd|embed(_dim|ding_dim)?|emb_dim|d_emb)$")
_POS_TABLE = re.compile(r"pos|position|wpe")
_NO_EXAMPLE = object()


# -- the grader's target model, dressed as the submission's model ----------------------------------------


class _Tags:
    """Tag vectors standing in for embeddings and hidden states.

    Row ``t`` of :attr:`table` is the embedding of token ``t``; :meth:`placed` makes fresh rows for tokens
    embedded at explicit positions (the rows carry them on to the model's block); :meth:`hidden` makes fresh
    rows that also carry the logits at their position. Rows are found again by their float32 bytes, so
    copies, slices, concatenations and float32/float64 casts keep them recognisable.
    """

    def __init__(self, rows: int, dim: int, dtype: np.dtype) -> None:
        self._rng = np.random.default_rng(20240517)
        self.dim, self.dtype = dim, dtype
        self.table = self._rng.standard_normal((rows, dim)).astype(np.float32).astype(dtype)
        self._index: dict[bytes, tuple[int, np.ndarray | None, int | None]] = {
            row.astype(np.float32).tobytes(): (i, None, None) for i, row in enumerate(self.table)
        }

    def lookup(self, x: np.ndarray) -> list[tuple[int, np.ndarray | None, int | None]] | None:
        rows = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
        found = []
        for row in rows:
            hit = self._index.get(row.tobytes())
            if hit is None:
                return None
            found.append(hit)
        return found

    def hidden(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Fresh rows (..., dim) naming each token and the logits at its position."""
        flat_ids, flat_logits = ids.reshape(-1), logits.reshape(-1, logits.shape[-1])
        rows = self._rng.standard_normal((len(flat_ids), self.dim)).astype(np.float32).astype(self.dtype)
        for row, t, lg in zip(rows, flat_ids, flat_logits, strict=True):
            self._index[row.astype(np.float32).tobytes()] = (int(t), lg, None)
        return rows.reshape(*ids.shape, self.dim)

    def placed(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Fresh rows (..., dim) naming each token and the position it was embedded at."""
        flat_ids = ids.reshape(-1)
        flat_pos = np.broadcast_to(positions, ids.shape).reshape(-1)
        rows = self._rng.standard_normal((len(flat_ids), self.dim)).astype(np.float32).astype(self.dtype)
        for row, t, q in zip(rows, flat_ids, flat_pos, strict=True):
            self._index[row.astype(np.float32).tobytes()] = (int(t), None, int(q))
        return rows.reshape(*ids.shape, self.dim)


def normalize_mask(mask: Any, length: int) -> np.ndarray:
    """A submission's mask as booleans (L, L) or (n, L, L), True = may attend.

    Booleans (inverted when the diagonal is all False: every position attends to itself), 0/1 numbers, or
    additive 0 / -inf (or a large negative); leading singleton axes are dropped.
    """
    m = np.asarray(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim not in (2, 3) or m.shape[-2:] != (length, length):
        raise InterfaceError(f"a mask of shape {np.shape(mask)} for a sequence of length {length}")
    if m.dtype == bool:
        allowed = m
    else:
        m = m.astype(np.float64)
        ones = np.all((m == 0) | (m == 1)) and np.any(m == 1)
        allowed = (m == 1) if ones else (m > -1e4)
    diagonal = np.diagonal(allowed, axis1=-2, axis2=-1)
    return ~allowed if not diagonal.any() else allowed


def _as_ids(value: Any) -> np.ndarray | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, np.integer)) for v in value):
        if any(isinstance(v, bool) for v in value):
            return None
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim in (1, 2) and value.size:
        return value.astype(np.int64)
    return None


def _softmax_kind(example: np.ndarray) -> str:
    rows = np.asarray(example, dtype=np.float64).reshape(-1, example.shape[-1])
    if not np.all(np.isfinite(rows)):
        return "logits"
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    if np.all(rows <= 1e-9) and np.allclose(lse, 0.0, atol=1e-5):
        return "log_probs"
    if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-5):
        return "probs"
    return "logits"


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class _Parsed:
    """What a call on the model was about: token ids (given, or read from tag rows), the mask, the position
    ids the caller passed (None: none), and the logits already attached to hidden-state rows; ``slot`` is
    where the ids were (None: from rows)."""

    def __init__(
        self,
        ids: np.ndarray,
        mask: np.ndarray | None,
        known_logits: np.ndarray | None,
        slot: int | str | None,
        positions: np.ndarray | None = None,
    ) -> None:
        self.ids, self.mask, self.known_logits, self.slot = ids, mask, known_logits, slot
        self.positions = positions
        self.computed: np.ndarray | None = None  # the grader's logits, once computed for this call


def _position_ids(value: Any, ids: np.ndarray) -> np.ndarray | None:
    """Position ids a caller passed, as an array broadcastable to ``ids``: an array of ints, or a start offset.

    The grader's model honours them (it has a position embedding), so wrong positions give wrong logits.
    """
    if value is None:
        return None
    if _is_int(value) or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"):
        return int(value) + np.arange(ids.shape[-1])  # a start offset (start_pos=P)
    pos = np.asarray(value)
    if pos.dtype.kind not in "iu" and not (pos.dtype.kind == "f" and np.all(pos == np.round(pos))):
        raise InterfaceError(f"position ids of dtype {pos.dtype}: expected integers")
    pos = pos.astype(np.int64)
    while pos.ndim > ids.ndim and pos.shape[0] == 1:
        pos = pos[0]
    if pos.shape[-1] != ids.shape[-1]:
        raise InterfaceError(f"position ids of shape {pos.shape} for {ids.shape[-1]} tokens")
    if ids.ndim == 1 and pos.ndim == 2 and pos.shape[0] == 1:
        pos = pos[0]
    return pos


class _State:
    """What every adapter (the model and its sub-objects) shares: the grader's model, the tags, the example."""

    def __init__(self, lm: MinimalLM, example: Any) -> None:
        self.lm, self.example = lm, example
        attrs = _instance_values(example)
        vocab = next((v for k, v in attrs.items() if _VOCAB.search(k.lower()) and _is_int(v)), lm.vocab_size)
        dim = next((v for k, v in attrs.items() if _DIM.match(k.lower()) and _is_int(v)), None)
        if dim is None:
            tables = [v for v in attrs.values() if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == vocab]
            dim = tables[0].shape[1] if tables else lm.d_model
        dtypes = [v.dtype for v in attrs.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
        self.their_vocab, self.dim = int(vocab), int(dim)
        self.passes = 0
        self.tags = _Tags(max(self.their_vocab, lm.vocab_size), self.dim, dtypes[0] if dtypes else np.dtype(np.float64))

    # the form of an answer, by example
    def example_output(self, obj: Any, name: str, args: tuple, kwargs: dict) -> Any:
        if obj is None:
            return _NO_EXAMPLE
        fn = obj if name == "__call__" and not inspect.isclass(obj) else getattr(obj, name, None)
        if not callable(fn):
            return _NO_EXAMPLE
        vocab = self.their_vocab

        def translate(v: Any) -> Any:
            ids = _as_ids(v)
            if ids is None or vocab >= self.lm.vocab_size:
                return v
            out = ids % vocab
            return out.tolist() if isinstance(v, (list, tuple)) else out

        try:
            return fn(*[translate(a) for a in args], **{k: translate(v) for k, v in kwargs.items()})
        except Exception:
            return _NO_EXAMPLE

    def parse(self, fn: Any, args: tuple, kwargs: dict) -> _Parsed | None:
        names = _param_names(fn, len(args))
        items = list(zip(names, args, strict=True)) + list(kwargs.items())
        ids = known = slot = None
        positions: Any = None
        placed: np.ndarray | None = None
        lead: tuple[int, ...] = ()
        for index, (key, value) in enumerate(items):
            if _POSITION_IDS.search(str(key).lower()):
                positions = value
            if _POSITIONS.search(str(key).lower()) or ids is not None:
                continue
            as_ids = _as_ids(value)
            if as_ids is not None:
                ids, slot = as_ids, (index if index < len(args) else key)
                continue
            if _is_float_array(value) and value.ndim in (2, 3) and value.shape[-1] == self.dim:
                rows = self.tags.lookup(value)
                if rows is not None:
                    lead = value.shape[:-1]
                    ids = np.array([r[0] for r in rows], dtype=np.int64).reshape(lead)
                    attached = [r[1] for r in rows if r[1] is not None]
                    if len(attached) == len(rows):
                        known = np.stack(attached).reshape(*lead, -1)
                    if any(r[2] is not None for r in rows):  # some rows embedded at explicit positions
                        placed = np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64)
                        placed = placed.reshape(lead)
        if ids is None:
            return None
        length = ids.shape[-1]
        square = [v for _, v in items if isinstance(v, np.ndarray) and v.dtype.kind in "bf" and v.ndim >= 2]
        mask = next((normalize_mask(v, length) for v in square if v.shape[-2:] == (length, length)), None)
        if positions is None and placed is not None:  # the others at their place in the sequence (the mask's)
            visible = np.tril(np.ones((length, length), dtype=bool)) if mask is None else mask
            positions = np.where(placed >= 0, placed, np.broadcast_to(visible.sum(axis=-1) - 1, placed.shape))
        return _Parsed(ids, mask, known, slot, _position_ids(positions, ids))

    def logits(self, parsed: _Parsed) -> np.ndarray:
        """The grader's logits for a call; a call that runs the model (not one answered from hidden-state
        rows) is one forward pass, counted in :attr:`passes`, which the dressed model never exposes."""
        if parsed.known_logits is not None:
            return parsed.known_logits
        if parsed.computed is None:
            self.passes += 1
            ids, pos = parsed.ids, parsed.positions
            if ids.ndim == 1:
                parsed.computed = self.lm.logits(ids, parsed.mask, pos)
            else:
                masks = parsed.mask if parsed.mask is not None and parsed.mask.ndim == 3 else [parsed.mask] * len(ids)
                rows = pos if pos is not None and pos.ndim == 2 else [pos] * len(ids)
                parsed.computed = np.stack([self.lm.logits(r, m, q) for r, m, q in zip(ids, masks, rows, strict=True)])
        return parsed.computed

    def call(self, obj: Any, fn_for_names: Any, name: str, args: tuple, kwargs: dict) -> Any:
        example = self.example_output(obj, name, args, kwargs)
        parsed = self.parse(fn_for_names, args, kwargs)
        if parsed is None:
            values = [*args, *kwargs.values()]
            strange = [v for v in values if _is_float_array(v) and v.ndim in (2, 3) and v.shape[-1] == self.dim]
            if strange:
                raise InterfaceError(
                    f"the verifier called target_model.{name} on {strange[0].shape} vectors that are not the "
                    "model's own embeddings (scaled or position-encoded by the verifier itself?): the grader can "
                    "serve embeddings only when they are passed on unchanged"
                )
            if example is not _NO_EXAMPLE:
                return example  # no tokens or embeddings among the arguments: a helper of the submission's own
            raise InterfaceError(
                f"the verifier called target_model.{name} with {_describe(args, kwargs)}: no token ids or "
                "embeddings the grader's model could answer for"
            )

        def probe(other_ids: np.ndarray) -> Any:
            new_args, new_kwargs = list(args), dict(kwargs)
            if isinstance(parsed.slot, int):
                new_args[parsed.slot] = other_ids
            else:
                new_kwargs[str(parsed.slot)] = other_ids
            return self.example_output(obj, name, tuple(new_args), new_kwargs)

        return self.shape_like(name, parsed, example, probe)

    def context_free(self, name: str, parsed: _Parsed, example: np.ndarray, probe: Callable[..., Any]) -> bool:
        """Does this method answer per token (an embedding), or per position in context (a hidden state)?"""
        if parsed.known_logits is not None or parsed.mask is not None or parsed.slot is None:
            return False
        if re.search(r"emb|wte|lookup|token_?vec", name.lower()):
            return True
        ids = parsed.ids % self.their_vocab
        if ids.shape[-1] < 2:
            return True
        changed = ids.copy()
        changed[..., 0] = (changed[..., 0] + 1) % self.their_vocab
        other = probe(changed)
        if not isinstance(other, np.ndarray) or other.shape != example.shape:
            return False
        return bool(np.array_equal(other[..., -1, :], example[..., -1, :]))

    def shape_like(self, name: str, parsed: _Parsed, example: Any, probe: Callable[..., Any]) -> Any:
        if example is _NO_EXAMPLE:
            return self.logits(parsed)  # (*lead, L, V)
        if isinstance(example, (tuple, list)) and example and _as_ids(example) is None:
            items = list(example)
            for i, item in enumerate(items):
                if isinstance(item, np.ndarray) and item.dtype.kind == "f" and item.ndim >= 1:
                    items[i] = self.shape_like(name, parsed, item, probe)
                    if item.shape[-1] != self.dim:
                        break  # the logits: further items (caches, hidden states) stay the submission's own
            return type(example)(items) if isinstance(example, tuple) else items
        if isinstance(example, (int, np.integer)) and not isinstance(example, bool):
            ours = self.logits(parsed)
            return type(example)(int(np.argmax(ours.reshape(-1, ours.shape[-1])[-1])))
        if _as_ids(example) is not None:
            return self.greedy_like(parsed.ids, example)
        ex = np.asarray(example) if not isinstance(example, np.ndarray) else example
        if ex.dtype.kind != "f" or ex.ndim == 0:
            raise InterfaceError(f"target_model.{name} returns {type(example).__name__}: the grader cannot mimic it")
        if ex.shape[-1] == self.dim and self.dim != self.their_vocab:
            if self.context_free(name, parsed, ex, probe):
                if parsed.positions is not None:
                    return _fit(self.tags.placed(parsed.ids, parsed.positions), parsed.ids.shape, ex, name)
                return _fit(self.tags.table[parsed.ids], parsed.ids.shape, ex, name)
            return _fit(self.tags.hidden(parsed.ids, self.logits(parsed)), parsed.ids.shape, ex, name)
        ours = self.logits(parsed)
        kind = _softmax_kind(ex)
        out = _log_softmax(ours)
        if kind == "probs":
            out = np.exp(out)
        elif kind == "logits":
            out = ours
        return _fit(out, parsed.ids.shape, ex, name).astype(ex.dtype, copy=False)

    def greedy_like(self, ids: np.ndarray, example: Any) -> Any:
        seq = ids.reshape(-1).tolist()
        ex = np.asarray(example).reshape(-1).tolist()
        whole = len(ex) > len(seq) and ex[: len(seq)] == [t % self.their_vocab for t in seq]
        new = self.lm.greedy(seq, len(ex) - len(seq) if whole else len(ex))
        self.passes += len(new)  # a generate() on the target: one pass per token
        out = seq + new if whole else new
        return np.asarray(out, dtype=np.asarray(example).dtype) if isinstance(example, np.ndarray) else out

    def attribute(self, obj: Any, name: str) -> Any:
        if obj is None or not hasattr(obj, name):
            if _VOCAB.search(name.lower()):
                return self.lm.vocab_size
            if _DIM.match(name.lower()):
                return self.dim
            raise AttributeError(name)
        value = getattr(obj, name)
        if _is_int(value) and _VOCAB.search(name.lower()):
            return max(int(value), self.lm.vocab_size)
        if value is None or isinstance(value, (int, float, str, bool, np.number)):
            return value
        if isinstance(value, np.ndarray):
            if _POS_TABLE.search(name.lower()):
                return np.zeros_like(value)  # the grader's model is position-free (tree-consistent)
            if value.ndim == 2 and value.shape == (self.their_vocab, self.dim):
                return self.tags.table
            raise InterfaceError(
                f"the verifier reads the model's array {name} {value.shape} directly; the grader can pass its own "
                "target model only through methods (forward/logits/embed/...), not through weights"
            )
        if inspect.ismethod(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            return lambda *a, **k: self.call(obj, value, name, a, k)
        if callable(value) or hasattr(value, "__dict__"):
            return make_target(self, type(value), value)
        raise InterfaceError(f"the verifier reads the model's attribute {name} ({type(value).__name__})")


def _fit(out: np.ndarray, lead: tuple[int, ...], example: np.ndarray, name: str) -> np.ndarray:
    """Our (*lead, X) array in the layout of the submission's example answer."""
    base = len(lead) + 1
    if example.ndim == base:
        return out
    if example.ndim == base + 1:
        return out[None]
    if example.ndim == base - 1:
        if len(lead) == 2 and lead[0] == 1 and example.shape[0] == lead[1]:
            return out[0]  # (1, L) in, (L, X) out
        return out[..., -1, :]  # the last position only
    raise InterfaceError(f"target_model.{name}: cannot lay out {out.shape} like the submission's {example.shape}")


def _is_float_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind == "f"


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _instance_values(obj: Any) -> dict[str, Any]:
    try:
        return dict(vars(obj)) if obj is not None else {}
    except TypeError:
        return {}


def _param_names(fn: Any, n: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if params and params[0] == "self":
        params = params[1:]
    return (params + [f"arg{i}" for i in range(len(params), n)])[:n]


def _describe(args: tuple, kwargs: dict) -> str:
    def one(v: Any) -> str:
        if isinstance(v, np.ndarray):
            return f"array{v.shape} {v.dtype}"
        return type(v).__name__

    return "(" + ", ".join([one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]) + ")"


_DEFAULT_METHODS = ("__call__", "forward", "logits", "get_logits", "log_probs", "get_log_probs", "predict", "score")


def make_target(state: _State, cls: type | None, example: Any) -> Any:
    """The grader's model dressed as an instance of ``cls`` (the submission's model class, or a sub-object)."""
    namespace: dict[str, Any] = {}
    names = set(_DEFAULT_METHODS)
    if cls is not None:
        for klass in cls.__mro__:
            if klass is object:
                continue
            for name, value in vars(klass).items():
                if inspect.isfunction(value) and (not name.startswith("__") or name == "__call__"):
                    names.add(name)

    def method(name: str) -> Callable[..., Any]:
        original = getattr(cls, name, None) if cls is not None else None

        def mimic(self: Any, *args: Any, **kwargs: Any) -> Any:
            return state.call(example, original or mimic, name, args, kwargs)

        mimic.__name__ = name
        return mimic

    for name in names:
        namespace[name] = method(name)

    def __getattr__(self: Any, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return state.attribute(example, name)

    namespace["__getattr__"] = __getattr__
    namespace["__repr__"] = lambda self: f"<grader's target model as {cls.__name__ if cls else 'a model'}>"
    bases: tuple[type, ...] = (cls,) if cls is not None and cls.__module__ != "builtins" else (object,)
    try:
        adapter_cls = type(f"Grader{bases[0].__name__}", bases, namespace)
        return object.__new__(adapter_cls)
    except TypeError:
        return object.__new__(type("GraderTargetModel", (object,), namespace))


class TargetAdapter:
    """Builds the grader's target model in the form the submission's verifier expects."""

    def __init__(self, sub: Answer, cfg: dict[str, Any]) -> None:
        self.lm = MinimalLM(**cfg)
        self.cls, self.example = _their_model(sub, self.lm)
        self.state = _State(self.lm, self.example)

    def model(self) -> Any:
        return make_target(self.state, self.cls, self.example)

    def describe(self) -> str:
        if self.cls is None:
            return "no model class found: the grader's model is passed with forward/__call__/logits methods"
        return f"the grader's model dressed as {self.cls.__name__}" + ("" if self.example else " (not instantiable)")


def _their_model(sub: Answer, lm: MinimalLM) -> tuple[type | None, Any]:
    """The submission's model class and, when it can be built, an instance (used only to learn answer forms)."""
    try:
        found = sub.classes("model", skip=r"draft|mock|tree|test")
    except InterfaceError:
        return None, None
    return (found[0], _instantiate(found[0], lm)) if found else (None, None)


def _instantiate(cls: type, lm: MinimalLM) -> Any:
    values = {
        r"vocab": lm.vocab_size,
        r"^(d|d_?model|dim|hidden(_size|_dim)?|n_?embd|embed(_dim|ding_dim)?|emb_dim)$": lm.d_model,
        r"head": lm.n_heads,
        r"seed": 0,
        r"layer": 1,
        r"max|ctx|context|seq|block|len|position": 512,
        r"ff|mlp|inner": 4 * lm.d_model,
    }
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        params = []
    kwargs = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hit = next((v for pat, v in values.items() if re.search(pat, p.name.lower())), None)
        if hit is not None:
            kwargs[p.name] = hit
        elif p.name.lower() in ("rng", "random_state", "generator"):
            kwargs[p.name] = np.random.default_rng(0)
    for attempt in (kwargs, {}):
        try:
            return cls(**attempt)
        except Exception:
            continue
    return None


# -- calling the submission's verifier ----------------------------------------------------------------------


def _bind(fn: Callable[..., Any], values: dict[str, Any], order: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Arguments by parameter name; parameters with unknown names take the unused values in ``order``."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")
        ]
    except (TypeError, ValueError):
        return [values[k] for k in order if k in values], {}
    chosen: dict[str, str] = {}
    for p in params:
        key = next(
            (k for k in _PRIORITY if k in values and k not in chosen.values() and re.search(_P[k], p.name.lower())),
            None,
        )
        if key is not None:
            chosen[p.name] = key
    rest = [k for k in order if k in values and k not in chosen.values()]
    for p in params:
        if p.name not in chosen and p.default is p.empty:
            if not rest:
                raise InterfaceError(f"{_name(fn)}: no value for its parameter {p.name!r}")
            chosen[p.name] = rest.pop(0)
    positional, keywords, gap = [], {}, False
    for p in params:
        if p.name not in chosen:
            gap = True
        elif p.kind == p.KEYWORD_ONLY or (gap and p.kind != p.POSITIONAL_ONLY):
            keywords[p.name] = values[chosen[p.name]]
        else:
            positional.append(values[chosen[p.name]])
    return positional, keywords


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))


def _bound(sub: Answer, fn: Any, model: Any) -> Any:
    """A method found on a class (``Verifier.verify_and_accept``) is called on an instance built with the model."""
    qual = getattr(fn, "__qualname__", "")
    try:
        first = next(iter(inspect.signature(fn).parameters), "")
    except (TypeError, ValueError):
        first = ""
    if "." not in qual or first != "self" or "<locals>" in qual:
        return fn
    owner = getattr(inspect.getmodule(fn), qual.split(".")[0], None)
    if owner is None:
        return fn
    args, kwargs = _bind(owner, {"model": model, "temperature": 0.0}, ["model"])
    return getattr(sub.call(owner, *args, **kwargs), fn.__name__)


class _Globals:
    """Swap module-level models of the submission for the adapter while its verifier runs (when the verifier
    takes no model argument and uses a global one)."""

    def __init__(self, fn: Any, cls: type | None, model: Any) -> None:
        self.space = getattr(inspect.unwrap(fn), "__globals__", {})
        self.model = model
        self.swap = {
            key: value
            for key, value in self.space.items()
            if (cls is not None and isinstance(value, cls))
            or (
                re.search(_P["model"], key.lower())
                and not (inspect.isclass(value) or inspect.ismodule(value) or inspect.isroutine(value))
                and any(callable(getattr(value, m, None)) for m in ("forward", "logits", "__call__"))
            )
        }

    def __enter__(self) -> None:
        for key in self.swap:
            self.space[key] = self.model

    def __exit__(self, *exc: object) -> None:
        self.space.update(self.swap)


def _int_or_none(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)) and np.size(v) == 1:
        v = np.asarray(v).reshape(-1)[0]
    if isinstance(v, (np.ndarray,)) and v.ndim == 0:
        v = v.item()
    if _is_int(v) or (isinstance(v, np.generic) and np.issubdtype(type(v), np.integer)):
        return None if int(v) < 0 else int(v)
    raise InterfaceError(f"new_token is {type(v).__name__} {v!r}, expected an int or None")


def _token_list(v: Any, what: str) -> list[int]:
    arr = Answer.array(v, what).reshape(-1)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InterfaceError(f"{what}: expected token ids, got {arr.dtype}")
    return [int(t) for t in arr]


def read_result(out: Any) -> tuple[list[int], int | None]:
    """(accepted_tokens, new_token) from a tuple, a dict, an object, or a bare list of tokens."""
    if isinstance(out, dict) or (hasattr(out, "__dict__") and not isinstance(out, (list, tuple, np.ndarray))):
        d = out if isinstance(out, dict) else vars(out)
        keys = {str(k).lower(): k for k in d}
        acc = next((keys[k] for k in keys if re.search(r"accept|tokens|output|path", k)), None)
        new = next((keys[k] for k in keys if re.search(r"new|bonus|correct|next|replace|extra|last", k)), None)
        if acc is None:
            raise InterfaceError(f"verifier returned a dict/object with keys {sorted(keys)}: no accepted tokens")
        return _token_list(d[acc], "accepted_tokens"), _int_or_none(d[new]) if new is not None else None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], (list, tuple, np.ndarray)):
        rest = [x for x in out[1:] if x is None or _is_int(x) or isinstance(x, (np.ndarray, list, tuple))]
        return _token_list(out[0], "accepted_tokens"), _int_or_none(rest[0]) if rest else None
    if (
        isinstance(out, (tuple, list))
        and len(out) == 2
        and (out[0] is None or _is_int(out[0]))
        and isinstance(out[1], (list, tuple, np.ndarray))
    ):  # (new_token, accepted)
        return _token_list(out[1], "accepted_tokens"), _int_or_none(out[0])
    return _token_list(out, "accepted tokens"), None


def appended_tokens(accepted: list[int], new_token: int | None, tokens: list[int], parents: list[int]) -> list[int]:
    """The tokens one cycle adds to the sequence, read from (accepted, new_token) by the tree's structure.

    Conventions seen: ``accepted`` = the drafted path and ``new_token`` the correction/bonus (the prompt's);
    or ``accepted`` already ending with the correction (``new_token`` repeating it, or None). Walking the tree
    from the roots along ``accepted`` tells them apart: a last element that is no child of the path before it
    is the correction itself. A correct verifier never leaves a child token unaccepted that matches the
    correction, so this reading cannot turn a right answer wrong.
    """
    kids: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        kids.setdefault(p, []).append(i)
    frontier, on_path = kids.get(-1, []), 0
    for t in accepted:
        nxt = [i for i in frontier if tokens[i] == t]
        if not nxt:
            break
        on_path += 1
        frontier = [c for i in nxt for c in kids.get(i, [])]
    if accepted and on_path == len(accepted) - 1 and new_token in (None, accepted[-1]):
        return list(accepted)
    return list(accepted) + ([new_token] if new_token is not None else [])


class Verifier:
    """One verification cycle through the submission's verifier (or its generation loop)."""

    def __init__(self, sub: Answer, cfg: dict[str, Any]) -> None:
        self.sub = sub
        self.adapter = TargetAdapter(sub, cfg)
        self.mask_fn = _optional_role(sub, "mask")
        self.verify = self._find_verifier()
        self.loop = None if self.verify is not None else self._find_loop()

    def _find_verifier(self) -> Any:
        try:
            found = self.sub.candidates("verify")
        except InterfaceError:
            return None
        found = [c for c in found if not re.search(r"mask|test", c.name.lower())]
        if not found:
            return None
        if found[0].score >= 80:  # the prompt's own name: its errors are its own, not an interface problem
            return found[0].load()

        def probe(fn: Any) -> Any:
            self._cycle_with(fn, [1, 2, 3], [4, 5], [-1, 0])
            return True

        for cand in found[:6]:
            try:
                fn = cand.load()
                probe(fn)
                return fn
            except Exception:
                continue
        return None

    def _find_loop(self) -> Any:
        try:
            found = self.sub.candidates("generate")
        except InterfaceError:
            found = []
        if not found:
            raise self.sub.interface_error(
                "verify", hint="no generation loop (speculative_generate) either; fix: [roles] verify = ..."
            )
        return found[0].load()

    def describe(self) -> str:
        how = f"verifier {_name(self.verify)}" if self.verify is not None else f"generation loop {_name(self.loop)}"
        return f"{how}; {self.adapter.describe()}"

    def _cycle_with(self, fn: Any, prompt: list[int], tokens: list[int], parents: list[int]) -> dict[str, Any]:
        model = self.adapter.model()
        kids = [[j for j, p in enumerate(parents) if p == i] for i in range(len(parents))]
        values: dict[str, Any] = {
            "prompt": list(prompt),
            "tokens": list(tokens),
            "parents": list(parents),
            "children": kids,
            "model": model,
            "temperature": 0.0,
        }
        fn = _bound(self.sub, fn, model)
        tree = _tree_object(fn, values)
        if tree is not None:  # verify(prompt, tree, model): the submission's own tree class
            values["tokens"] = tree
            del values["parents"]
        args, kwargs = _bind(fn, values, ["prompt", "tokens", "parents", "model", "temperature"])
        if any(v is model for v in [*args, *kwargs.values()]):
            out = self.sub.call(fn, *args, **kwargs)
        else:
            with _Globals(fn, self.adapter.cls, model):
                out = self.sub.call(fn, *args, **kwargs)
        accepted, new_token = read_result(out)
        return {
            "accepted": accepted,
            "new_token": new_token,
            "appended": appended_tokens(accepted, new_token, list(tokens), list(parents)),
        }

    def cycle(self, prompt: list[int], tokens: list[int], parents: list[int]) -> dict[str, Any]:
        """One verification cycle; ``passes`` is how many forward passes of the grader's model it ran."""
        before = self.adapter.state.passes
        if self.verify is not None:
            result = self._cycle_with(self.verify, prompt, tokens, parents)
        else:
            seq = self.run_loop(prompt, [{"tokens": tokens, "parents": parents}], 1)
            result = {"accepted": seq[len(prompt) :], "new_token": None, "appended": seq[len(prompt) :]}
        return {**result, "passes": self.adapter.state.passes - before}

    def run_loop(self, prompt: list[int], trees: list[dict[str, Any]], n_new: int) -> list[int]:
        """The submission's own generation loop, drafting from ``trees`` by how far it has got."""
        p = len(prompt)

        def draft(seq: Any = None, *_: Any, **__: Any) -> tuple[list[int], list[int]]:
            got = len(seq) - p if isinstance(seq, (list, tuple, np.ndarray)) else 0
            tree = trees[min(max(got, 0), len(trees) - 1)]
            return list(tree["tokens"]), list(tree["parents"])

        def any_method(self: Any, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return draft  # propose / draft / get_tree / generate_tree ...: whatever the loop calls

        drafter = type("GraderDraft", (), {"__call__": staticmethod(draft), "__getattr__": any_method})
        model = self.adapter.model()
        loop = _bound(self.sub, self.loop, model)
        try:
            names = list(inspect.signature(loop).parameters)
        except (TypeError, ValueError):
            names = []
        max_name = next((n for n in names if re.search(_P["max"], n.lower())), "")
        limit = n_new if re.search(r"new|num|^n$|steps", max_name.lower()) else p + n_new
        values = {"prompt": list(prompt), "model": model, "draft": drafter(), "max": limit, "temperature": 0.0}
        args, kwargs = _bind(loop, values, ["prompt", "model", "draft", "max", "temperature"])
        out = self.sub.call(loop, *args, **kwargs)
        if isinstance(out, tuple) and out and isinstance(out[0], (list, np.ndarray)):
            out = out[0]
        seq = _token_list(out, "generated tokens")
        return seq if seq[:p] == list(prompt) else list(prompt) + seq


def _optional_role(sub: Answer, role: str) -> Any:
    try:
        found = sub.candidates(role)
    except InterfaceError:
        return None
    return found[0].load() if found else None


def _tree_object(fn: Any, values: dict[str, Any]) -> Any:
    """The submission's tree class built from tokens/parents/children, when the verifier takes a tree object
    (a parameter named like ``tree`` and none for the parents); None otherwise."""
    try:
        names = [n.lower() for n in inspect.signature(fn).parameters]
    except (TypeError, ValueError):
        return None
    if any(re.search(_P["parents"], n) for n in names) or not any(re.fullmatch(_TREE_PARAM, n) for n in names):
        return None
    space = getattr(inspect.unwrap(fn), "__globals__", {})
    for name, cls in space.items():
        if not (inspect.isclass(cls) and "tree" in name.lower()):
            continue
        try:
            params = [n.lower() for n in inspect.signature(cls).parameters]
        except (TypeError, ValueError):
            continue
        if any(re.search(_P["parents"], n) for n in params):
            args, kwargs = _bind(cls, values, ["tokens", "parents", "children"])
            return cls(*args, **kwargs)
    return None


# -- driver functions ---------------------------------------------------------------------------------------


def tree_masks(sub: Answer, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """For each case {prompt_len, parents}: the submission's mask as booleans (True = may attend)."""
    fn = sub.role("mask")
    names = _param_names(fn, 2)
    masks, forms = [], []
    for case in cases:
        p, parents = int(case["prompt_len"]), [int(x) for x in case["parents"]]
        prompt_arg: Any = p
        if names and re.search(r"token|^prompt$|^seq|context|ids", names[0].lower()):
            prompt_arg = list(range(1, p + 1))  # the function wants the prompt tokens themselves
        if names and re.search(r"parent", names[0].lower()):
            out = sub.call(fn, parents, prompt_arg)
        else:
            out = sub.call(fn, prompt_arg, parents)
        size = p + len(parents)
        if isinstance(out, (tuple, list)) and not _looks_like_matrix(out, size):
            out = next((o for o in out if np.shape(o)[-2:] == (size, size)), out[0])
        if isinstance(out, dict):
            out = next((v for v in out.values() if np.shape(v)[-2:] == (size, size)), None)
        arr = Answer.array(out, "build_tree_mask output")
        if arr.ndim < 2 or arr.shape[-2:] != (size, size):
            masks.append(arr.astype(np.float64))
            forms.append(f"shape {arr.shape}")
            continue
        form = "bool" if arr.dtype == bool else ("additive" if np.any(arr < 0) else "0/1")
        allowed = normalize_mask(arr, size)
        if arr.dtype == bool and not np.diagonal(arr, axis1=-2, axis2=-1).any():
            form = "bool, True = blocked"
        masks.append(allowed)
        forms.append(form)
    return {"masks": masks, "forms": forms}


def _looks_like_matrix(out: Any, size: int) -> bool:
    try:
        return np.asarray(out).shape[-2:] == (size, size)
    except (TypeError, ValueError):
        return False


def verify_cycles(sub: Answer, model_cfg: dict[str, Any], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """One verification cycle per case {prompt, tokens, parents}: {accepted, new_token, appended} each."""
    verifier = Verifier(sub, model_cfg)
    out = []
    for case in cases:
        out.append(
            verifier.cycle([int(t) for t in case["prompt"]], [int(t) for t in case["tokens"]], list(case["parents"]))
        )
    return {"how": verifier.describe(), "cycles": out}


def speculative_runs(sub: Answer, model_cfg: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Chained cycles per run {prompt, trees, n_new, max_cycles}: the tree for a cycle is trees[len(seq) - P].

    Runs until n_new tokens are generated or max_cycles cycles ran, or a cycle appended nothing. The sequence
    and each cycle's raw result come back; judging is the grader's. A submission with a generation loop but no
    verifier runs its loop whole (or, when max_cycles is set, one single-cycle loop call per cycle).
    """
    verifier = Verifier(sub, model_cfg)
    results = []
    for run in runs:
        prompt = [int(t) for t in run["prompt"]]
        trees, n_new, max_cycles = run["trees"], int(run["n_new"]), run.get("max_cycles")
        if verifier.verify is None and max_cycles is None:  # the submission's own loop, start to end
            seq = verifier.run_loop(prompt, trees, n_new)
            results.append({"sequence": seq, "cycles": [], "stopped": "generation loop"})
            continue
        seq, stopped = list(prompt), ""
        cycles: list[dict[str, Any]] = []
        while len(seq) - len(prompt) < n_new and (max_cycles is None or len(cycles) < max_cycles):
            tree = trees[min(len(seq) - len(prompt), len(trees) - 1)]
            result = verifier.cycle(seq, [int(t) for t in tree["tokens"]], list(tree["parents"]))
            cycles.append(result)
            if not result["appended"]:
                stopped = f"cycle {len(cycles)} appended nothing"
                break
            seq += result["appended"]
        results.append({"sequence": seq, "cycles": cycles, "stopped": stopped})
    return {"how": verifier.describe(), "runs": results}
