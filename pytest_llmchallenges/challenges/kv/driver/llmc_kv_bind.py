"""Which value each parameter of the answer's callables gets, by the concept its name names (kv driver).

The kv prompt names no API, so every callable is read by its signature: a parameter's lower-cased name is
matched against ``NAMES`` (the first concept that matches wins, in table order) and receives that concept's
value, once; what no name tells is bound by position in the order the caller gives. ``llmc_bind.bind`` does
the binding (and records what went by position, for the probe rule); this module only decides the names.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import bind, parameters, qualified_name
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import bind, parameters, qualified_name  # type: ignore[no-redef]

# concept -> pattern on lower-cased parameter names; the first matching concept wins, in this order
NAMES = {
    "num_layers": r"^(n_?layers?|num_?layers|layers|n_layer|nlayers)$",
    "num_heads": r"^(n_?heads?|num_?(attention_)?heads|heads|h|nh|n_?head|num_kv_heads|n_kv_heads)$",
    "head_dim": r"^(head_?dim|d_?head|d_?k|dh|head_?size|hd|d_?kv|dim_?head|d_h)$",
    "d_model": r"^(d_?model|dim|d|hidden(_size|_dim)?|embed_?dim|n_?embd|model_?dim|d_?emb|emb_?dim|hidden)$",
    "batch": r"^(batch(_size)?|b|bs|bsz|max_?batch(_size)?|n_?seqs?|num_?seq(uence)?s|max_?num_?seqs)$",
    "capacity": r"^(capacity|cap|max_?(seq(uence)?_?)?len(gth)?s?|max_?tokens|max_?pos(itions)?|max_?context"
    r"|context_?len(gth)?|block_?size|max_?t|max_?seq|seq_?len|max_?cache_?len|cache_?size|n_?ctx)$",
    "dtype": r"^dtype$",
    "seed": r"^(seed|random_?seed)$",
    "rng": r"^(rng|generator|random_?state)$",
    "scale": r"^(scale|sm_?scale|softmax_?scale|scaling)$",
    "layer": r"^(layer(_?idx|_?id|_?index|_?num|_?no)?|l|li|layer_i)$",
    "positions": r"^(positions?|pos|offsets?|write_?pos(itions)?|start_?pos(itions)?|cache_?pos(itions)?"
    r"|seq_?pos(itions)?|starts?)$",
    "lengths": r"^(lengths?|lens|seq_?lens?|seqlens|seq_?lengths|prompt_?len(gth)?s|input_?len(gth)?s|n_?new"
    r"|num_?new(_tokens)?|n_?tokens|num_?tokens|valid_?len(gth)?s?|sequence_?lengths|context_?lens|new_?lens"
    r"|token_?counts?|counts)$",
    "mask": r"(mask|valid|attention_mask|pad)",
    "cache": r"(cache|^kv$|past|kv_?state|^state$|memory|^mem$)",
    "x": r"^(x|xs|x_?t|x_?new|new_?x|h|hidden_?states?|inputs?|input_?embeds?|emb|embeddings?|tokens?|x_?step"
    r"|token_?emb(edding)?s?|x_?in|new_?tokens?|prompt|prompts|prompt_?embeds?|x_?emb|seq|step_?input)$",
    "wq": r"^(w_?q|q_?(proj|w|weight)|w_?query|query_?(weight|proj)|wq)$",
    "wk": r"^(w_?k|k_?(proj|w|weight)|w_?key|key_?(weight|proj)|wk)$",
    "wv": r"^(w_?v|v_?(proj|w|weight)|w_?value|value_?(weight|proj)|wv)$",
    "wo": r"^(w_?o|o_?(proj|w|weight)|w_?out|out_?(proj|weight)|w_?proj|wo|c_?proj)$",
    "params": r"^(params|weights|p|w|layer_?params|attn_?params|parameters|layer_?weights|attn_?weights)$",
    "config": r"(config|cfg|conf|settings|spec)$",
    "q": r"^(q|query|queries|q_?new|q_?t|q_?step)$",
    "k": r"^(k|key|keys|k_?new|k_?t|new_?k)$",
    "v": r"^(v|value|values|v_?new|v_?t|new_?v)$",
}
_INT = r"(Optional\[)?int\]?( \| None)?"  # an annotation that never receives a per-sequence array


@cache  # called for every parameter of every call into the answer, timed laps included
def concept_of(name: str) -> str | None:
    low = name.lower()
    return next((c for c, pat in NAMES.items() if re.search(pat, low)), None)


def annotation_of(p: inspect.Parameter) -> str:
    ann = p.annotation
    if ann is p.empty:
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def call(sub: Answer, fn: Any, pool: dict[str, Any], positional_order: tuple[str, ...] = ()) -> Any:
    """Call fn binding each parameter by the concept its name names (each concept once); unknown required
    parameters take the unused concepts of ``positional_order``; absent optional ones keep their defaults.
    A parameter annotated ``int`` never receives a per-sequence array. ``pool["params"]`` and
    ``pool["config"]``, when callable, build the value for the very parameter that takes it."""
    named: dict[str, Any] = {}  # "=<parameter>" -> its value: bound by its exact name
    used: set[str] = set()
    for p in parameters(fn):
        c = concept_of(p.name)
        if c in ("positions", "lengths") and re.fullmatch(_INT, annotation_of(p)):
            c = None
        if c == "params" and "params" in pool and callable(pool["params"]):
            named["=" + p.name] = pool["params"](fn, p.name)
        elif c == "config" and "config" in pool and callable(pool["config"]):
            named["=" + p.name] = pool["config"](fn, p)
        elif c is not None and c in pool and c not in used:
            named["=" + p.name] = pool[c]
        else:
            continue
        used.add(c)
    patterns = {key: f"^{re.escape(key[1:].lower())}$" for key in named}
    values = {**{c: v for c, v in pool.items() if c in positional_order}, **named}
    return sub.invoke(bind(fn, values, patterns, list(positional_order), taken=used))


def takes(fn: Any, concept: str) -> bool:
    return any(concept_of(p.name) == concept for p in parameters(fn))


def param_for(fn: Any, concept: str) -> inspect.Parameter | None:
    return next((p for p in parameters(fn) if concept_of(p.name) == concept), None)


class ConfigMaker:
    """Builds the submission's config object for a parameter named config/cfg, from its class's fields."""

    def __init__(self, sub: Answer, sizes: dict[str, Any]) -> None:
        self.sub, self.sizes = sub, sizes

    def __call__(self, fn: Any, param: inspect.Parameter) -> Any:
        cls = param.annotation if inspect.isclass(param.annotation) else None
        if cls is None and isinstance(param.annotation, str):
            cls = next((c.load() for c in self.sub.candidates("config") if c.name == param.annotation), None)
        if cls is None:
            found = self.sub.candidates("config")
            if not found:
                raise InterfaceError(f"{qualified_name(fn)} takes {param.name!r} but no config class was found")
            cls = found[0].load()
        return call(self.sub, cls, dict(self.sizes))


def methods(cls: type, pattern: str) -> list[str]:
    return [n for n in dir(cls) if re.search(pattern, n.lower()) and callable(getattr(cls, n, None))]
