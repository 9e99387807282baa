"""Driver for the beam_search prompt: run the submission's batched beam search on the grader's model.

The grader chooses the model (a ScriptedLM tree or the grader's MinimalLM), so the submission's own random
model must be replaced wherever its search takes it from. Real answers get their model in many ways: an
argument (first, last or keyword), a module global, an instance built inside the search, ``self.model`` of
a decoder class. So the driver replaces the model's *methods*, not the object:

1. find the search (``batched_beam_search``, a method of that name, or a class with a search method);
2. find the submission's model classes (and model-like module functions) among its loaded modules, take an
   instance of each (a module global, or one built with default arguments), and probe every method whose
   name looks like a model call on tiny inputs: a (2, 3) batch, two ragged sequences, one sequence. The
   answers' shapes ((n, V), (n, L, V), (V,), ...) and kind (logits or probabilities) are its conventions;
3. patch those methods on the class (and those functions in their modules) with ``ModelView`` methods that
   answer in the same conventions from the grader's model; pass an instance wherever the search has a
   model parameter;
4. call the search with arguments matched by parameter name (llmc_bind) and normalise what it returns into,
   per batch item, a list of (generated tokens, score). The first job is the probe: search candidates are
   tried in rank order under the toolkit's probe rule (llmc_probe) until one runs it.

Steps 2 and 3 are guesses by nature (which method is the model, in which input form): a method that raises
on a probe input is simply not patched (the probe rule's "failed probe").

If the installed model is never called, the search computes its logits some other way: that is an
``interface`` failure naming what was found, with the manifest line (``model = "file.py:Class"``) to fix it.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child import llmc_scan
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError, Role
    from pytest_llmchallenges.child.llmc_bind import Binding
    from pytest_llmchallenges.child.llmc_bind import bind as bind_values
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working

    from .llmc_scripted import FORMS, MinimalTokenModel, ModelView, ScriptedLM, classify_output
except ImportError:  # inside the child, where this folder is on sys.path
    import llmc_scan  # type: ignore[no-redef]
    from llmc_api import Answer, Candidate, InterfaceError, Role  # type: ignore[no-redef]
    from llmc_bind import Binding  # type: ignore[no-redef]
    from llmc_bind import bind as bind_values  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working  # type: ignore[no-redef]
    from llmc_scripted import (  # type: ignore[no-redef]
        FORMS,
        MinimalTokenModel,
        ModelView,
        ScriptedLM,
        classify_output,
    )

ROLES = {
    "search": Role(
        prescribed=["batched_beam_search"],
        patterns=[r"batch.*beam", r"beam.*search", r"beam", r"search", r"decode"],
        kind="any",
        description="batched_beam_search function or class",
    ),
    "model": Role(
        prescribed=["MinimalLM"],
        patterns=[r"minimal", r"lm$", r"language.?model", r"transformer", r"model", r"gpt", r"net$"],
        kind="class",
        description="the language model class the search calls",
    ),
}

MODEL_METHOD = re.compile(r"forward|logit|log_?prob|prob|next|predict|score|__call__|^step$|^call$|^lm$|^apply$")
NOT_MODEL_METHOD = re.compile(r"beam|search|generate|decode|sample|greedy|train|loss|backward|^_[^_]")
SEARCH_METHODS = ("batched_beam_search", "beam_search", "search", "decode", "generate", "run", "__call__")
VALUE_ORDER = ("prompts", "beam_width", "max_new_tokens", "alpha", "eos_token_id")


# --- parameter matching ------------------------------------------------------------------------------------
# Which of our values a parameter of the submission's search (or decoder class) wants, by its name; the first
# pattern that matches wins, so the order matters ("max_beam_steps" is a length, not a width).
PARAMS = {
    "eos_token_id": r"eos|^(end_token|end_id|stop_token|stop_id|end_token_id)$",
    "alpha": r"alpha|length_penalty|^(lp|penalty|len_penalty)$",
    "vocab_size": r"vocab",
    "max_new_tokens": r"^max|new_tokens|steps|^(n_new|num_tokens|n_tokens|gen_len)$",
    "beam_width": r"beam|width|^(k|num_beams|n_beams|topk)$",
    "model": r"model|^(lm|llm|net|network|transformer|fn)$|_fn$",
    "prompts": r"prompt|^(inputs|input_ids|token_ids|ids|batch|sequences|seqs|tokens|x)$",
}


def bind(fn: Any, values: dict[str, Any], taken: set[str] | None = None) -> Binding:
    """Arguments for ``fn`` from ``values`` by parameter name; unknown required parameters take the next
    unused value in the prompt's order. ``taken`` (updated) are the values given already (to a constructor)."""
    return bind_values(fn, values, PARAMS, list(VALUE_ORDER), taken=taken)


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))


# --- the submission's modules, classes and instances -------------------------------------------------------
def submission_modules(sub: Answer) -> list[Any]:
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and sub.root in Path(f).resolve().parents:
            out.append(mod)
    return out


def owned(sub: Answer, obj: Any) -> bool:
    mod = sys.modules.get(getattr(obj, "__module__", "") or "")
    f = getattr(mod, "__file__", None)
    return isinstance(f, str) and sub.root in Path(f).resolve().parents


def find_search(sub: Answer, cand: Candidate | None = None) -> tuple[Any, Any]:
    """(callable to construct or call, search method name or None) for one 'search' candidate (the best
    ranked one when none is given)."""
    if cand is None:
        found = sub.candidates("search")
        if not found:
            raise sub.interface_error("search")
        cand = found[0]
    obj = cand.load()
    if "." in cand.name and not inspect.isclass(obj):
        owner = sub.load(cand.file, cand.name.rsplit(".", 1)[0])
        if inspect.isclass(owner):
            return owner, cand.name.rsplit(".", 1)[1]
    if inspect.isclass(obj):
        for m in SEARCH_METHODS:
            if m in vars(obj) or (m != "__call__" and hasattr(obj, m)):
                return obj, m
        raise sub.interface_error("search", hint=f"class {cand} has none of the methods {', '.join(SEARCH_METHODS)}")
    return obj, None


def instances_of(cls: type, modules: list[Any]) -> list[Any]:
    return [v for m in modules for v in vars(m).values() if type(v) is cls]


def build_instance(sub: Answer, cls: type, modules: list[Any], vocab: int) -> Any:
    """An instance of a model class: a module global if there is one, else one built with common arguments."""
    existing = instances_of(cls, modules)
    if existing:
        return existing[0]
    for kwargs in ({}, {"vocab_size": vocab, "d_model": 64}, {"vocab_size": vocab}, {"seed": 0}):
        try:
            return cls(**kwargs)
        except Exception:
            continue
    for args in ((vocab, 64), (vocab,)):
        try:
            return cls(*args)
        except Exception:
            continue
    return None


PROBES: dict[str, list[tuple[Any, int, int]]] = {
    "batch": [(np.array([[1, 2, 3], [4, 5, 6]]), 2, 3)],
    "seqs": [([[1, 2, 3], [4, 5]], 2, 3)],
    "one": [(np.array([1, 2, 3]), 1, 3), ([1, 2, 3], 1, 3)],
}


def extra_parameters(fn: Any) -> tuple[str | None, str | None, bool]:
    """(mask parameter, lengths parameter, whether every other required parameter is one of those two)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return None, None, True
    mask = next((p.name for p in params if "mask" in p.name.lower()), None)
    lengths = next((p.name for p in params if re.search(r"len", p.name.lower())), None)
    others_ok = all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in (mask, lengths)
        for p in params
    )
    return mask, lengths, others_ok


def probe(fn: Any) -> dict[str, tuple[str, str]]:
    """The layouts a model callable answers with, per input form it accepts (empty: not a model call).

    A callable that also wants a padding mask or the sequence lengths gets them: an all-ones mask shaped
    like the tokens (or a causal (L, L) one) and the true lengths."""
    layouts: dict[str, tuple[str, str]] = {}
    mask_name, lengths_name, others_ok = extra_parameters(fn)
    if not others_ok:
        return layouts
    for form in FORMS:
        for x, n, length in PROBES[form]:
            attempts: list[dict[str, Any]] = [{}]
            if mask_name and form != "seqs":
                causal = np.tril(np.ones((length, length), dtype=bool))
                attempts += [{mask_name: np.ones(np.shape(x))}, {mask_name: causal}]
            if lengths_name:
                lens = [len(r) for r in x] if form == "seqs" else [length] * n
                attempts += [{lengths_name: np.array(lens) if form != "one" else length}]
            for extra in attempts:
                try:
                    with np.errstate(all="ignore"):
                        out = fn(x, **extra)
                except Exception:
                    continue
                found = classify_output(out, form, n, length)
                if found:
                    layouts[form] = found
                    break
            if form in layouts:
                break
    return layouts


def required_positional(fn: Any, bound: bool) -> int:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return -1
    if bound and params and params[0].name in ("self", "cls"):
        params = params[1:]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 1
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


class Installation:
    """What was replaced in the submission, for messages and for the model argument."""

    def __init__(self) -> None:
        self.patched: list[str] = []
        self.instance: Any = None
        self.classes: list[type] = []

    def describe(self) -> str:
        return "; ".join(self.patched) if self.patched else "nothing (no model class or function found)"


def import_model_files(sub: Answer) -> None:
    """Import the files that define model-like methods, so that a search importing its model lazily (inside
    the function) still meets the patched class. A file that fails to import is left out."""
    files = {
        d.file
        for d in sub.scan.definitions
        if d.kind == "method"
        and MODEL_METHOD.search(d.name.rsplit(".", 1)[-1].lower())
        and not llmc_scan.looks_stale(d.file)
    }
    for file in sorted(files):
        with contextlib.suppress(Exception):
            sub.module(file)


def install(sub: Answer, view: ModelView, search_owner: Any) -> Installation:
    inst = Installation()
    import_model_files(sub)
    modules = submission_modules(sub)
    classes: list[type] = []
    if "model" in sub.manifest:  # a class, or an instance of one
        named = sub.candidates("model")[0].load()
        classes.append(named if inspect.isclass(named) else type(named))
    for mod in modules:
        for v in list(vars(mod).values()):
            cls = v if inspect.isclass(v) else type(v)
            if cls not in classes and cls is not search_owner and owned(sub, cls):
                classes.append(cls)
    preferred = [c.name for c in sub.candidates("model")]
    classes.sort(key=lambda c: preferred.index(c.__name__) if c.__name__ in preferred else len(preferred))

    for cls in classes:
        names = [
            n
            for n in dir(cls)
            if MODEL_METHOD.search(n.lower()) and not NOT_MODEL_METHOD.search(n.lower()) and n != "__class__"
        ]
        names = [n for n in names if any(n in vars(k) for k in cls.__mro__ if owned(sub, k))]
        if not names:
            continue
        obj = build_instance(sub, cls, modules, view.vocab_size)
        if obj is None:
            continue
        learned = {}
        for n in names:
            bound = getattr(obj, n, None)
            if callable(bound) and required_positional(bound, bound=False) != 0:
                layouts = probe(bound)
                if layouts:
                    learned[n] = layouts
        for n, layouts in learned.items():
            static = isinstance(inspect.getattr_static(cls, n), staticmethod)
            fn = view.method(layouts, bound=not static)
            setattr(cls, n, staticmethod(fn) if static else fn)
            inst.patched.append(f"{cls.__name__}.{n} {_show(layouts)}")
        if learned:
            inst.classes.append(cls)
            if inst.instance is None:
                inst.instance = obj
            for attr in ("vocab_size", "V", "n_vocab", "vocab"):
                if isinstance(getattr(obj, attr, None), int):
                    setattr(obj, attr, view.vocab_size)

    for mod in modules:
        for n, v in list(vars(mod).items()):
            if not inspect.isfunction(v) or not owned(sub, v) or v is search_owner:
                continue
            if not MODEL_METHOD.search(n.lower()) or NOT_MODEL_METHOD.search(n.lower()):
                continue
            if required_positional(v, bound=False) == 0:
                continue
            layouts = probe(v)
            if layouts:
                fn = view.method(layouts, bound=False)
                for m in modules:
                    for k, w in list(vars(m).items()):
                        if w is v:
                            setattr(m, k, fn)
                inst.patched.append(f"{mod.__name__}.{n} {_show(layouts)}")
    return inst


def _show(layouts: dict[str, tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{f}->{lay} {kind}" for f, (lay, kind) in layouts.items()) + "]"


class GenericLM:
    """Stands in for a model argument when the submission has no model class of its own to imitate."""

    vocab_size: int = 0


def generic_model(view: ModelView) -> Any:
    """Next-token answers ((n, V) for a batch); what a method returns follows its name."""
    model = GenericLM()
    names = ("forward", "__call__", "logits", "get_logits", "next_token_logits", "log_probs", "get_log_probs")
    for n in (*names, "next_token_log_probs", "get_next_token_log_probs", "probs", "next_token_probs"):
        kind = "logprob" if re.search("log_?prob", n) else "prob" if "prob" in n else "logits"
        layouts = {"batch": ("nV", kind), "seqs": ("nV", kind), "one": ("V", kind)}
        setattr(GenericLM, n, view.method(layouts, bound=True))
    model.vocab_size = view.vocab_size
    return model


# --- results -----------------------------------------------------------------------------------------------
TOKEN_KEYS = ("tokens", "sequence", "seq", "token_ids", "ids", "generated", "output", "sequences", "beam")
SCORE_KEYS = ("score", "adjusted_score", "penalized_score", "penalised_score", "normalized_score", "final_score")
RAW_KEYS = ("logprob", "log_prob", "accumulated_logprob", "total_logprob", "cum_logprob", "sum_logprob", "acc")


def _is_tokens(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and (np.issubdtype(x.dtype, np.integer) or x.size == 0)
    return isinstance(x, (list, tuple)) and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in x)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (float, int, np.floating, np.integer)) and not isinstance(x, bool)) or (
        isinstance(x, np.ndarray) and x.ndim == 0
    )


def _fields(x: Any) -> dict[str, Any] | None:
    if isinstance(x, dict):
        return {str(k).lower(): v for k, v in x.items()}
    if hasattr(x, "_asdict"):
        return {k.lower(): v for k, v in x._asdict().items()}
    if hasattr(x, "__dict__") and not isinstance(x, type):
        d = {k.lower(): v for k, v in vars(x).items()}
        for k in dir(type(x)):
            if isinstance(inspect.getattr_static(type(x), k, None), property):
                with contextlib.suppress(Exception):
                    d[k.lower()] = getattr(x, k)
        return d
    return None


def as_beam(x: Any, alpha: float) -> tuple[list[int], float] | None:
    fields = _fields(x)
    if fields is not None:
        tokens = next((fields[k] for k in TOKEN_KEYS if k in fields and _is_tokens(fields[k])), None)
        if tokens is None:
            tokens = next((v for v in fields.values() if _is_tokens(v)), None)
        if tokens is None:
            return None
        tokens = [int(t) for t in tokens]
        score = next((fields[k] for k in SCORE_KEYS if k in fields and _is_number(fields[k])), None)
        if score is None:
            score = next(
                (v for k, v in fields.items() if "score" in k and "raw" not in k and _is_number(v)),
                None,
            )
        if score is None:
            raw = next((fields[k] for k in RAW_KEYS if k in fields and _is_number(fields[k])), None)
            if raw is None:
                return None
            score = float(raw) / max(len(tokens), 1) ** alpha  # the prompt's score from what it returned
        return tokens, float(score)
    if isinstance(x, (list, tuple)) and 2 <= len(x) <= 4:
        seqs = [e for e in x if _is_tokens(e)]
        nums = [float(e) for e in x if _is_number(e)]
        if len(seqs) != 1 or not nums or len(seqs) + len(nums) != len(x):
            return None
        tokens = [int(t) for t in seqs[0]]
        penalty = max(len(tokens), 1) ** alpha
        for a in nums:  # (tokens, raw, score) or (tokens, score, raw): the score is raw / len**alpha
            for b in nums:
                if a is not b and penalty != 1 and np.isclose(b, a / penalty, rtol=1e-6, atol=1e-12):
                    return tokens, b
        return tokens, nums[0]
    return None


def as_item(x: Any, alpha: float) -> list[tuple[list[int], float]] | None:
    """One batch item's beams from a list of beams, (sequences, scores), or a dict holding those."""
    fields = _fields(x) if isinstance(x, dict) else None
    if fields is not None:
        seqs = next((fields[k] for k in ("sequences", "seqs", "tokens", "beams") if k in fields), None)
        scores = next((fields[k] for k in ("scores", "score", "adjusted_scores") if k in fields), None)
        if seqs is not None and scores is not None:
            return as_item((seqs, scores), alpha)
        if seqs is not None:
            return as_item(seqs, alpha)
        return None
    if isinstance(x, np.ndarray) and x.dtype == object:
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        if len(x) == 2 and isinstance(x[0], (list, tuple, np.ndarray)) and not _is_tokens(x[0]):
            seqs, scores = x
            try:
                scores = [float(s) for s in np.asarray(scores, dtype=np.float64).ravel()]
            except (TypeError, ValueError):
                scores = None
            if scores is not None and len(scores) == len(seqs) and all(_is_tokens(s) for s in seqs):
                return [([int(t) for t in s], sc) for s, sc in zip(seqs, scores, strict=True)]
        beams = [as_beam(e, alpha) for e in x]
        if all(b is not None for b in beams):
            return beams  # type: ignore[return-value]
    return None


def normalise(raw: Any, n_items: int, alpha: float) -> list[list[tuple[list[int], float]]]:
    """Per batch item, a list of (tokens, score), from the many shapes real answers return."""
    if isinstance(raw, np.ndarray) and raw.dtype == object:
        raw = raw.tolist()
    if isinstance(raw, dict) and set(raw) == set(range(n_items)):
        raw = [raw[i] for i in range(n_items)]
    if isinstance(raw, dict):
        fields = _fields(raw) or {}
        inner = next((fields[k] for k in ("results", "beams", "outputs", "batch") if k in fields), None)
        if inner is not None:
            return normalise(inner, n_items, alpha)
        seqs = next((fields[k] for k in ("sequences", "seqs", "tokens") if k in fields), None)
        scores = next((fields[k] for k in ("scores", "adjusted_scores") if k in fields), None)
        if seqs is not None and scores is not None and len(seqs) == n_items:
            raw = [(s, c) for s, c in zip(seqs, scores, strict=False)]
    if isinstance(raw, (list, tuple)):
        if len(raw) == n_items:
            items = [as_item(e, alpha) for e in raw]
            if all(i is not None for i in items):
                return items  # type: ignore[return-value]
        if len(raw) == 2 and len(raw[0]) == n_items and len(raw[1]) == n_items:
            items = [as_item((s, c), alpha) for s, c in zip(raw[0], raw[1], strict=True)]
            if all(i is not None for i in items):
                return items  # type: ignore[return-value]
        if n_items == 1:
            item = as_item(raw, alpha)
            if item is not None:
                return [item]
    text = repr(raw)
    raise InterfaceError(
        f"cannot read the search's result as {n_items} lists of (tokens, score): {type(raw).__name__} "
        f"{text[:300]}{'...' if len(text) > 300 else ''}"
    )


# --- the driver function ----------------------------------------------------------------------------------
def add_folder_to_path(sub: Answer) -> None:
    """Let ``from model import X`` inside the submission find its sibling file (appended, so that a file
    named like a library module never shadows it). Workaround until the sandbox puts the folder on
    sys.path itself."""
    root = str(sub.root)
    if root not in sys.path:
        sys.path.append(root)


def make_model(spec: dict[str, Any], prompts: list[list[int]]) -> Any:
    if spec["kind"] == "scripted":
        return ScriptedLM.from_spec(spec)
    if spec["kind"] == "minimal":
        from llmc_models import MinimalLM

        kwargs = {k: v for k, v in spec.items() if k != "kind"}
        return MinimalTokenModel(MinimalLM(**kwargs), prompts)
    raise ValueError(f"unknown model kind {spec['kind']!r}")


@entry
def searches(sub: Answer, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several searches in one child (one sandbox start each saves): the submission's model is replaced once,
    then every job puts its own grader's model behind the replacement."""
    add_folder_to_path(sub)
    top_owner, _ = find_search(sub)
    found = sub.candidates("search")
    first = [[int(t) for t in p] for p in jobs[0]["prompts"]]
    view = ModelView(make_model(jobs[0]["model"], first), first)
    inst = install(sub, view, top_owner)
    if inst.instance is None:
        inst.patched.append("a stand-in model object (no model class of the submission's could be probed)")
    model_arg = inst.instance if inst.instance is not None else generic_model(view)
    sub.ready()

    def run(owner_method: tuple[Any, str | None], job: dict[str, Any]) -> dict[str, Any]:
        return run_job(sub, view, inst, model_arg, *owner_method, job)

    attempts = [Attempt(str(c), partial(find_search, sub, c), c.documented) for c in found[:3]]
    hint = 'or, for a search that takes its logits from elsewhere, [roles] model = "file.py:ModelClass"'
    search_fn, result = first_working(
        attempts, lambda owner: run(owner, jobs[0]), lambda tried: sub.interface_error("search", tried, hint)
    )
    return [result, *(run(search_fn, job) for job in jobs[1:])]


def run_job(
    sub: Answer,
    view: ModelView,
    inst: Installation,
    model_arg: Any,
    owner: Any,
    method: str | None,
    job: dict[str, Any],
) -> dict[str, Any]:
    prompts = [[int(t) for t in p] for p in job["prompts"]]
    view.reset(make_model(job["model"], prompts), prompts)
    alpha = float(job["alpha"])
    values = {
        "prompts": prompts,
        "beam_width": int(job["beam_width"]),
        "max_new_tokens": int(job["max_new_tokens"]),
        "alpha": alpha,
        "eos_token_id": int(job["eos_token_id"]),
        "vocab_size": view.vocab_size,
        "model": model_arg,
    }
    taken: set[str] = set()
    if method is None:
        target = owner
    else:
        has_init = owner.__init__ is not object.__init__
        decoder = sub.invoke(bind(owner, values, taken)) if has_init else sub.call(owner)
        target = getattr(decoder, method)
    raw = sub.invoke(bind(target, values, set(taken) - {"prompts"}))
    where = f"{_name(owner)}{'.' + method if method else ''}"
    if view.calls == 0:
        raise InterfaceError(
            f"{where} never called the grader's model, installed as: {inst.describe()}; its logits must come "
            f"from somewhere else (module-level weights?). Fix: give the search a model object, or add to "
            f'llmchallenge.toml: [roles] model = "file.py:ModelClass"'
        )
    beams = normalise(raw, len(prompts), alpha)
    return {
        "beams": [[[list(t), float(s)] for t, s in item] for item in beams],
        "calls": view.calls,
        "rows": view.rows_seen,
        "rows_without_prompt": view.rows_without_prompt,
        "suffixes": sorted(list(s) for s in view.suffixes)[:5000],
        "installed": inst.describe(),
        "search": where,
    }
