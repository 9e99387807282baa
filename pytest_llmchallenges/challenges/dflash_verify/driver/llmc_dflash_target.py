"""The grader's target model, dressed as the submission's own model class.

A submission calls its target model in its own way (``model(tokens, mask)``, ``model.forward(ids,
attn_mask=...)``, ``model.embed(tokens)`` then ``model.transformer_block(x, mask)``, ``model.tok_emb[tokens]``,
a (1, L, V) batch, log-probabilities...). :func:`make_target` subclasses that class (``isinstance`` checks
pass) without running its ``__init__``, and answers every method call by example: it calls the same method of
a real instance of the submission's model with the same arguments, only to see the *form* of the answer
(shape, logits or log-probs, hidden states or logits, dtype), and returns the grader's values (llmc_models.
MinimalLM, tree-consistent) in that form. Embeddings and hidden states it hands out are tag vectors
(llmc_dflash_tags), so whatever the verifier does with them by plain indexing and concatenation stays
traceable.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_models import MinimalLM

    from .llmc_dflash_calls import Parsed, is_float_array, parse_call
    from .llmc_dflash_forms import fit, log_softmax, softmax_kind
    from .llmc_dflash_model import their_model
    from .llmc_dflash_tags import Tags
    from .llmc_dflash_values import as_ids, is_int
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_dflash_calls import Parsed, is_float_array, parse_call  # type: ignore[no-redef]
    from llmc_dflash_forms import fit, log_softmax, softmax_kind  # type: ignore[no-redef]
    from llmc_dflash_model import their_model  # type: ignore[no-redef]
    from llmc_dflash_tags import Tags  # type: ignore[no-redef]
    from llmc_dflash_values import as_ids, is_int  # type: ignore[no-redef]
    from llmc_models import MinimalLM  # type: ignore[no-redef]

_VOCAB = re.compile(r"vocab|n_?tokens|num_?tokens|^v$")
_DIM = re.compile(r"^(d|d_?model|dim|hidden(_size|_dim)?|n_?embd|embed(_dim|ding_dim)?|emb_dim|d_emb)$")
_POS_TABLE = re.compile(r"pos|position|wpe")
_NO_EXAMPLE = object()


class _State:
    """What every adapter (the model and its sub-objects) shares: the grader's model, the tags, the example."""

    def __init__(self, lm: MinimalLM, example: Any) -> None:
        self.lm, self.example = lm, example
        attrs = _instance_values(example)
        vocab = next((v for k, v in attrs.items() if _VOCAB.search(k.lower()) and is_int(v)), lm.vocab_size)
        dim = next((v for k, v in attrs.items() if _DIM.match(k.lower()) and is_int(v)), None)
        if dim is None:
            tables = [v for v in attrs.values() if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == vocab]
            dim = tables[0].shape[1] if tables else lm.d_model
        dtypes = [v.dtype for v in attrs.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
        self.their_vocab, self.dim = int(vocab), int(dim)
        self.passes = 0
        self.tags = Tags(max(self.their_vocab, lm.vocab_size), self.dim, dtypes[0] if dtypes else np.dtype(np.float64))

    # the form of an answer, by example
    def example_output(self, obj: Any, name: str, args: tuple, kwargs: dict) -> Any:
        """What the submission's own model instance answers to this call, or _NO_EXAMPLE. Only the form of the
        answer is used, never its values; a failure is a guess that did not fit (llmc_probe rule 3), never
        the answer's error: the method may well be one that only the grader's values make sense for."""
        if obj is None:
            return _NO_EXAMPLE
        fn = obj if name == "__call__" and not inspect.isclass(obj) else getattr(obj, name, None)
        if not callable(fn):
            return _NO_EXAMPLE
        vocab = self.their_vocab

        def translate(v: Any) -> Any:
            ids = as_ids(v)
            if ids is None or vocab >= self.lm.vocab_size:
                return v
            out = ids % vocab
            return out.tolist() if isinstance(v, (list, tuple)) else out

        try:
            return fn(*[translate(a) for a in args], **{k: translate(v) for k, v in kwargs.items()})
        except Exception:
            return _NO_EXAMPLE

    def logits(self, parsed: Parsed) -> np.ndarray:
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
        parsed = parse_call(fn_for_names, args, kwargs, self.tags, self.dim)
        if parsed is None:
            values = [*args, *kwargs.values()]
            strange = [v for v in values if is_float_array(v) and v.ndim in (2, 3) and v.shape[-1] == self.dim]
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

    def context_free(self, name: str, parsed: Parsed, example: np.ndarray, probe: Callable[..., Any]) -> bool:
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

    def shape_like(self, name: str, parsed: Parsed, example: Any, probe: Callable[..., Any]) -> Any:
        if example is _NO_EXAMPLE:
            return self.logits(parsed)  # (*lead, L, V)
        if isinstance(example, (tuple, list)) and example and as_ids(example) is None:
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
        if as_ids(example) is not None:
            return self.greedy_like(parsed.ids, example)
        ex = np.asarray(example) if not isinstance(example, np.ndarray) else example
        if ex.dtype.kind != "f" or ex.ndim == 0:
            raise InterfaceError(f"target_model.{name} returns {type(example).__name__}: the grader cannot mimic it")
        if ex.shape[-1] == self.dim and self.dim != self.their_vocab:
            if self.context_free(name, parsed, ex, probe):
                if parsed.positions is not None:
                    return fit(self.tags.placed(parsed.ids, parsed.positions), parsed.ids.shape, ex, name)
                return fit(self.tags.table[parsed.ids], parsed.ids.shape, ex, name)
            return fit(self.tags.hidden(parsed.ids, self.logits(parsed)), parsed.ids.shape, ex, name)
        ours = self.logits(parsed)
        kind = softmax_kind(ex)
        out = log_softmax(ours)
        if kind == "probs":
            out = np.exp(out)
        elif kind == "logits":
            out = ours
        return fit(out, parsed.ids.shape, ex, name).astype(ex.dtype, copy=False)

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
        if is_int(value) and _VOCAB.search(name.lower()):
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


def _instance_values(obj: Any) -> dict[str, Any]:
    try:
        return dict(vars(obj)) if obj is not None else {}
    except TypeError:
        return {}


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
        self.cls, self.example = their_model(sub, self.lm)
        self.state = _State(self.lm, self.example)

    def model(self) -> Any:
        return make_target(self.state, self.cls, self.example)

    def describe(self) -> str:
        if self.cls is None:
            return "no model class found: the grader's model is passed with forward/__call__/logits methods"
        return f"the grader's model dressed as {self.cls.__name__}" + ("" if self.example else " (not instantiable)")
