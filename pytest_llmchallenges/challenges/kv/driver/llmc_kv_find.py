"""Finding how to drive a kv answer: its candidate shapes, each probed on a tiny session (kv driver).

Three shapes are tried, in this order (each a :class:`Convention`, which builds a fresh engine on demand):

- *module*: an attention class with ``prefill``/``decode_step`` methods or one ``forward``. Weights it takes
  are the grader's; weights it creates itself are read (llmc_kv_weights) and inputs rescaled to them.
- *functional*: module-level functions over hidden states (``forward(x, params, cache) -> (out, cache)``).
- *cache + attention*: a cache class and attention functions over it (module-level, or the cache's own
  methods), found by their signatures whatever their names.

Which convention drives the answer is decided by the toolkit's probe rule (``llmc_probe.first_working``):
the first that survives the probe session wins; the session itself then runs on a fresh engine of it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child import llmc_scan
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, Role, SubmissionError
    from pytest_llmchallenges.child.llmc_bind import parameters, qualified_name
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess

    from .llmc_kv_bind import ConfigMaker, call, concept_of, methods, takes
    from .llmc_kv_engines import Attend, CacheHolder, CacheOps, Engine, OpCalls
    from .llmc_kv_weights import Setup, read_weights
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    import llmc_scan  # type: ignore[no-redef]
    from llmc_api import Answer, InterfaceError, Role, SubmissionError  # type: ignore[no-redef]
    from llmc_bind import parameters, qualified_name  # type: ignore[no-redef]
    from llmc_kv_bind import ConfigMaker, call, concept_of, methods, takes  # type: ignore[no-redef]
    from llmc_kv_engines import Attend, CacheHolder, CacheOps, Engine, OpCalls  # type: ignore[no-redef]
    from llmc_kv_weights import Setup, read_weights  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]

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

_BLOCK_ATTR = r"(norm|mlp|ffn|feed_?forward|^w_?(up|down|gate)$|^fc\d|^ln_?\d|^ln$)"
_PREFILL = r"^(prefill|prefill_?\w*|process_?prompts?|encode_?prompts?|forward_?prompts?|prompt)$"
_DECODE = r"^(decode|decode_?step|step|generate_?step|decode_?one|next_?token|forward_?step|incremental|decode_?token)$"
_GENERIC = r"^(forward|__call__|call|attend|attention|extend|append|forward_?chunk|process|run)$"
_UPDATE = r"^(update|append|write|add|put|store|insert|push|extend|update_?cache|append_?kv)$"
_CACHE_ATTEND = r"(attend|attention|attn|forward|^__call__$)"
WEIGHT_RMS = 1.5  # our weights' entries have rms 1.5 / sqrt(D): inputs are rescaled to that for read weights


@dataclass
class Convention:
    """One way to drive the answer: ``build`` makes a fresh engine of it (the probe's is not reused).

    ``decode_2d``: a decode op gets x as (B, D); else as (B, 1, D), the variant tried when the first fails.
    ``built`` is the last engine built, even one whose probe then failed."""

    label: str
    make: Callable[[], Engine]
    documented: bool = False
    decode_2d: bool = True
    built: Engine | None = None

    def build(self) -> Engine:
        self.built = None
        engine = self.make()
        if isinstance(engine, OpCalls):
            engine.decode_2d = self.decode_2d
        self.built = engine
        return engine

    def flat(self) -> Convention:
        return Convention(f"{self.label}, decode x as (B, 1, D)", self.make, self.documented, decode_2d=False)


def _module_conventions(sub: Answer, setup: Setup) -> list[Convention]:
    found: list[Convention] = []
    for cand in sub.candidates("attention")[:5]:

        def make(cand: Any = cand, none_first: bool = True) -> Engine:
            cls = cand.load()
            if not inspect.isclass(cls):
                raise InterfaceError(f"{cand} is not a class")
            prefill = methods(cls, _PREFILL)
            decode = methods(cls, _DECODE)
            generic = [n for n in methods(cls, _GENERIC) if n != "__call__" or "__call__" in vars(cls)]
            if not (generic or (prefill and decode)):
                raise InterfaceError(f"class {cls.__name__} has no prefill/decode or forward methods")
            takes_weights = any(concept_of(p.name) in ("wq", "params") for p in parameters(cls))
            instances, read = [], []
            for layer in range(setup.num_layers):
                pool: dict[str, Any] = dict(setup.sizes(1))
                pool.update(setup.counted(layer))
                pool["params"] = setup.params_for(layer)
                pool["config"] = ConfigMaker(sub, setup.sizes(1))
                pool["layer"] = layer
                obj = call(sub, cls, pool)
                block = [n for n in getattr(obj, "__dict__", {}) if re.search(_BLOCK_ATTR, str(n).lower())]
                if block:
                    raise InterfaceError(f"{cls.__name__} is a transformer block ({', '.join(block[:3])}), "
                                         "not the attention the prompt asks for")  # fmt: skip
                if not takes_weights:
                    weights = read_weights(obj, layer, setup.d_model)
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
            if takes(any_op, "cache"):
                caches = CacheHolder(sub, setup, any_op, none_first)
                caches.make()
            named = "/".join(names[0] for names in chosen.values())
            engine = OpCalls(sub, setup, ops, caches, f"class {cls.__name__} ({named})")
            if read:
                engine.layers, engine.owned = read, True
                rms = np.sqrt(np.mean([np.mean(w[c] ** 2) for w in read for c in ("wq", "wk")]))
                engine.x_scale = float(np.clip(WEIGHT_RMS / (np.sqrt(setup.d_model) * rms), 1e-3, 1e3))
                engine.description += " with the weights it created"
            return engine

        label = f"class {cand}"
        found += [
            Convention(label, make, cand.documented),
            Convention(f"{label} with a cache made by its class", partial(make, none_first=False), cand.documented),
        ]
    return found


def _function_conventions(sub: Answer, setup: Setup) -> list[Convention]:
    found: list[Convention] = []
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
            if not takes(fn, "x"):
                raise InterfaceError(f"{qualified_name(fn)} takes no hidden states (x)")
            ops["generic"] = [fn] * setup.num_layers
        if not ops:
            raise InterfaceError("no prefill/decode pair and no attention forward function")
        first = next(iter(ops.values()))[0]
        caches = None
        if takes(first, "cache"):
            caches = CacheHolder(sub, setup, first, none_first)
            caches.make()
        names = ", ".join(qualified_name(v[0]) for v in ops.values())
        return OpCalls(sub, setup, ops, caches, f"functions {names}")

    pair = [*prefill, *decode] if prefill and decode else []
    for generic in [*steps, None] if pair else steps:
        named = [*pair, generic] if generic is not None else pair
        label = f"functions {' + '.join(str(c) for c in named)}"
        documented = all(c.documented for c in named)
        found += [
            Convention(label, partial(make, generic), documented),
            Convention(f"{label} with a cache made by its class", partial(make, generic, False), documented),
        ]
    return found


def _over_cache(params: Any) -> bool:
    concepts = {concept_of(p) for p in params}
    return "cache" in concepts and ("q" in concepts or {"x", "wq"} <= concepts)


def _attends(sub: Answer, cls: type, documented: bool) -> list[Attend]:
    """Attention callables over a cache of class ``cls``, found by signature whatever their names: writers
    (take k, v) and readers (take q); each module-level one takes the cache, and queries or hidden states
    with the projection weights. Named step candidates first, then the other module-level functions."""
    named = [c for c in sub.candidates("step") if "." not in c.name]
    seen = {(c.file, c.name) for c in named}
    declared = {(c.file, c.name) for c in named if c.documented}
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
        if callable(fn) and _over_cache(p.name for p in parameters(fn)):
            found.append(Attend(fn, documented=(file, name) in declared))
    for name in methods(cls, _CACHE_ATTEND):
        fn = getattr(cls, name)
        if takes(fn, "q"):
            found.append(Attend(fn, method=name, documented=documented))
    return found


def _cache_conventions(sub: Answer, setup: Setup) -> list[Convention]:
    found: list[Convention] = []
    for cls in sub.classes("cache"):
        attends = _attends(sub, cls, "cache" in sub.manifest)
        writers = [a for a in attends if a.writes]
        # a reader with a lengths parameter is the answer's own way to serve ragged batches: tried first
        readers = sorted((a for a in attends if not a.writes), key=lambda a: not takes(a.fn, "lengths"))
        update = methods(cls, _UPDATE)
        # prompts through a writer and steps through update + reader (the classic split) first
        pairs = [(w, r) for w in writers for r in readers] if update else []
        pairs += [(w, w) for w in writers] + ([(r, r) for r in readers] if update else [])
        for pre, dec in pairs[:6]:

            def make(cls: Any = cls, pre: Attend = pre, dec: Attend = dec, up: str | None = None) -> Engine:
                op = getattr(cls, up) if up else (pre.bound(cls) if pre.method else pre.fn)
                caches = CacheHolder(sub, setup, op)
                caches.factory = cls
                caches.shared = up is not None and takes(getattr(cls, up), "layer")
                caches.make()
                return CacheOps(sub, setup, caches, up, pre, dec)

            up = update[0] if update else None
            label = f"cache {cls.__name__}: " + (pre.name if pre is dec else f"{pre.name} + {dec.name}")
            found.append(Convention(label, partial(make, up=up), pre.documented and dec.documented))
    return found


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


def _try(convention: Convention, setup: Setup) -> None:
    engine = convention.build()
    if convention.decode_2d:
        _probe(engine, setup)
        return
    with guess("decode given x as (B, 1, D)"):
        _probe(engine, setup)


def _attempts(conventions: list[Convention]) -> Iterator[Attempt]:
    """One attempt per convention, each followed by its (B, 1, D) decode variant when it built an engine
    with a decode op and failed: first_working resumes this generator only after an attempt failed."""
    for convention in conventions:
        yield _attempt(convention)
        if isinstance(convention.built, OpCalls) and "decode" in convention.built.ops:
            yield _attempt(convention.flat())


def _attempt(convention: Convention) -> Attempt:
    return Attempt(convention.label, lambda: convention, convention.documented)


_HINT = (
    'name the parts in llmchallenge.toml: [roles] attention = "file.py:AttentionClass" (prefill/decode_step or '
    'forward), or cache = "file.py:CacheClass" with step = "file.py:attention_over_cache", '
    'init_cache = "file.py:init_cache"'
)


def find_engine(sub: Answer, setup: Setup) -> Engine:
    """A fresh engine of the first convention that survives a probe session (with the session's own sizes),
    by the toolkit's probe rule."""
    conventions = _module_conventions(sub, setup) + _function_conventions(sub, setup) + _cache_conventions(sub, setup)
    convention, _ = first_working(
        _attempts(conventions),
        lambda c: _try(c, setup),
        lambda tried: sub.interface_error("attention", tried=tried[:8] or None, hint=_HINT),
    )
    return convention.build()
