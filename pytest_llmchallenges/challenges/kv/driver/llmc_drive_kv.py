"""Driver for the kv challenge (KV cache for incremental decoding): adaptation only, no judging.

The prompt names no API, so the driver learns the submission's, observing rather than imposing:

- *module*: an attention class with ``prefill``/``decode_step`` methods or one ``forward``. Weights it takes
  are the grader's; weights it creates itself are *read* (arrays named like ``W_q``/``q_proj`` or Linear-like
  objects with ``.weight``/``.bias``) and sent back, so that the oracle uses them. Its cache is passed in,
  kept inside, or returned anew (``forward(x, cache) -> (out, cache)``); a returned state is passed back next
  time, wrapped as ``{layer: state}`` when the cache parameter is annotated as a dict.
- *functional*: module-level functions over hidden states (``forward(x, params, cache) -> (out, cache)``).
- *cache + attention*: a cache class and attention functions over it (module-level, or the cache's own
  methods). A function taking q, k, v and the cache *writes* it (a prefill, or a write-and-attend step); one
  taking q and the cache *reads* it after the driver called the cache's ``update``/``append``. A function
  that also takes the projection weights projects itself and gets the hidden states as its "query".

Per-sequence lengths reach the answer the way its signatures say: new-token counts for operations that
write, totals for a reader's optional ``lengths`` (passed only once the batch is ragged: its default means
"the whole cache"), per-sequence write offsets for a ``positions`` parameter.

Every shape of answer is probed on a tiny session, under the toolkit's probe rule (llmc_probe): the first
that survives drives the answer; when nothing runs, the verdict lists what was tried and the manifest lines
that would settle it.

Projection work is observed, not timed: weight matrices handed to (or read from) the answer are counting
views (same values and dtype) that tally the vectors multiplied through them, so the grader can see whether
past tokens' keys and values are projected again at every step.

The pieces, one job each: llmc_kv_bind (which value each parameter gets), llmc_kv_weights (the weights and
the projection tally), llmc_kv_engines (one adapter interface over each shape), llmc_kv_find (the candidate
shapes and their probe); this module holds the entry point the suite calls.

A session script (built by the grader) runs every op on every layer, each layer with its own inputs:
``{"op": "prefill" | "extend", "x": (L, B, T, D), "lengths": (B,)}`` and ``{"op": "decode", "x": (L, B, D)}``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, SubmissionError
    from pytest_llmchallenges.child.llmc_entry import entry

    from .llmc_kv_engines import Engine, Unsupported
    from .llmc_kv_find import ROLES, find_engine
    from .llmc_kv_weights import Setup, kv_rows
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer, SubmissionError  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_kv_engines import Engine, Unsupported  # type: ignore[no-redef]
    from llmc_kv_find import ROLES, find_engine  # type: ignore[no-redef]
    from llmc_kv_weights import Setup, kv_rows  # type: ignore[no-redef]

__all__ = ["ROLES", "prefill_and_decode", "storage_dtype"]


def arrays(obj: Any, depth: int = 2) -> list[np.ndarray]:
    """Arrays held by an object (attributes, dict values, list items), ``depth`` levels deep."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if depth == 0:
        return []
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)[:64]
    elif hasattr(obj, "__dict__") and not inspect.ismodule(obj) and not callable(obj):
        items = list(vars(obj).values())
    else:
        return []
    return [a for item in items for a in arrays(item, depth - 1)]


def storage_dtype(engine: Engine) -> str:
    """The narrowest float type the answer's caches and modules store (e.g. float16 for a compressed cache)."""
    holders: list[Any] = []
    caches = getattr(engine, "caches", None)
    if caches is not None:
        holders += caches.caches
    for fns in getattr(engine, "ops", {}).values():
        holders += [getattr(fn, "__self__", None) for fn in fns]
    floats = {a.dtype for h in holders for a in arrays(h) if np.issubdtype(a.dtype, np.floating)}
    return str(min(floats, key=lambda t: t.itemsize)) if floats else "float64"


@entry
def prefill_and_decode(sub: Answer, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a scripted session and return every op's outputs (zeros at padding positions).

    spec: num_heads, capacity, layers (list of {wq, wk, wv, wo}), ops (see the module docstring), and
    ``expect_error``: when set, an exception raised by the submission ends the session and is reported as
    ``{"error": {"op": index, "message": ...}}`` instead of failing the call. ``Unsupported`` ops (appending
    several tokens where the API cannot) are reported as ``{"unsupported": message}``. The result also holds
    the weights computed with (``layers``, with biases where the answer has them), ``x_scale``, ``owned``
    (weights the answer created), ``projects`` and ``kv_rows`` (key and value vectors the answer projected
    through its weights during each op), and ``ragged`` (how per-sequence lengths reach the answer, or None).
    """
    first = np.asarray(spec["ops"][0]["x"])
    n_layers, batch, d_model = first.shape[0], first.shape[1], first.shape[-1]
    setup = Setup(n_layers, batch, int(spec["num_heads"]), d_model, int(spec["capacity"]), spec["layers"])
    engine = find_engine(sub, setup)
    sub.ready()
    outputs: list[np.ndarray] = []
    layers = [{k: np.asarray(v, np.float64) for k, v in w.items()} for w in engine.layers]
    rows: list[int] = []
    result: dict[str, Any] = {
        "api": engine.description, "outputs": outputs, "layers": layers, "x_scale": engine.x_scale,
        "owned": engine.owned,
        "projects": engine.projects, "ragged": engine.ragged, "kv_rows": rows,
    }  # fmt: skip
    for index, op in enumerate(spec["ops"]):
        x = np.asarray(op["x"], dtype=np.float64) * engine.x_scale
        start = kv_rows(n_layers)
        try:
            per_layer = []
            for layer in range(n_layers):
                if op["op"] == "decode":
                    per_layer.append(engine.decode(layer, x[layer]))
                else:
                    lengths = np.asarray(op["lengths"], dtype=np.int64)
                    run = engine.prefill if op["op"] == "prefill" else engine.extend
                    out = run(layer, x[layer], lengths)
                    out = np.where(np.arange(x.shape[2])[None, :, None] < lengths[:, None, None], out, 0.0)
                    per_layer.append(out)
            engine.end_step()
        except Unsupported as exc:
            result["unsupported"] = str(exc)
            return result
        except SubmissionError as exc:
            if not spec.get("expect_error"):
                raise
            result["error"] = {"op": index, "message": str(exc).splitlines()[0][:300]}
            return result
        rows.append(kv_rows(n_layers) - start)
        outputs.append(np.stack(per_layer).astype(np.float64))
    result["storage"] = storage_dtype(engine)
    return result
