"""Driver for the flash_attention_bwd challenge (tiled backward with recomputation): adaptation only.

The prompt prescribes ``flash_attention_fwd(Q, K, V, tile_size, causal=True) -> (O, cache)`` with cache a dict
{'O', 'L', 'Q', 'K', 'V'} and ``flash_attention_bwd(dO, cache, tile_size, causal=True) -> (dQ, dK, dV)``.
Answers also return (O, L) or (O, cache tuple), take the cached arrays back one by one
(``bwd(dO, Q, K, V, O, L, ...)``), return the gradients as a dict, or keep everything in a class whose
``forward`` stores state for its ``backward``. The forward is found and called as in the forward challenge.

The finite-difference check runs here, in one child, through the submission's own forward (thousands of
forward calls would otherwise be thousands of sandboxed processes); both numbers go back to the grader.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.flash_attention.driver import llmc_drive_flash_attention as fa
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError, Role
    from pytest_llmchallenges.child.llmc_bind import parameters, qualified_name
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
except ImportError:  # inside the child, where this folder is on sys.path
    import llmc_drive_flash_attention as fa  # type: ignore[no-redef]
    from llmc_api import Answer, Candidate, InterfaceError, Role  # type: ignore[no-redef]
    from llmc_bind import parameters, qualified_name  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]

ROLES = {
    "fwd": Role(
        prescribed=["flash_attention_fwd"],
        patterns=fa.ROLES["fwd"].patterns,
        kind="any",
        min_params=3,
        description="flash_attention_fwd(Q, K, V, tile_size, causal=True) -> (O, cache)",
    ),
    "bwd": Role(
        prescribed=["flash_attention_bwd"],
        patterns=[
            r"flash.*(bwd|backward)",
            r"(attention|attn).*(bwd|backward|grad)",
            r"(bwd|backward).*(attention|attn)",
            r"^(backward|bwd|backward_pass|backprop)$",
        ],
        kind="function",
        min_params=1,
        description="flash_attention_bwd(dO, cache, tile_size, causal=True) -> (dQ, dK, dV)",
    ),
}

PATTERNS = {
    "do": r"^(d_?o|do_?|d_?out(put)?|dout|grad_?(o|out|output)?|g|dy|upstream(_grad)?|delta|d_?l_?d_?o)$",
    "cache": r"(cache|ctx|context|saved|state|residuals?|aux|stash|intermediates?)",
    "q": fa.PATTERNS["q"],
    "k": fa.PATTERNS["k"],
    "v": fa.PATTERNS["v"],
    "o": r"^(o|out|output|o_?fwd)$",
    "l": r"^(l|lse|logsumexp|log_?sum_?exp|l_?vec|stats)$",
    "tile": fa.PATTERNS["tile"],
    "causal": fa.PATTERNS["causal"],
}
GRAD_KEYS = {
    "dQ": r"^(d_?q|grad_?q|q_?grad|dl_?dq|q)$",
    "dK": r"^(d_?k|grad_?k|k_?grad|dl_?dk|k)$",
    "dV": r"^(d_?v|grad_?v|v_?grad|dl_?dv|v)$",
}
LSE_KEYS = r"^(lse|logsumexp|log_?sum_?exp)$"


def find_lse(cache: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The logsumexp L (B, H, N) from a cache: dict key 'L' (or lse/logsumexp), or the one item of shape
    (B, H, N) or (B, H, N, 1) in a tuple. None when there is none; never raises, as only one test grades L."""
    found: Any = None
    if isinstance(cache, dict):
        key = (
            "L"
            if "L" in cache
            else next((k for k in cache if isinstance(k, str) and re.match(LSE_KEYS, k.lower())), None)
        )
        found = None if key is None else cache[key]
    elif isinstance(cache, (tuple, list)):
        hits = [c for c in cache if fa._shape(c) in (shape, (*shape, 1))]
        found = hits[0] if len(hits) == 1 else None
    elif fa._shape(cache) in (shape, (*shape, 1)):
        found = cache
    try:
        arr = np.asarray(found, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr.reshape(shape) if found is not None and arr.size == int(np.prod(shape)) else None


def find_grads(value: Any, shape: tuple[int, ...], what: str) -> dict[str, np.ndarray]:
    """(dQ, dK, dV) from a 3-tuple or a dict with recognisable keys."""
    if isinstance(value, dict):
        found = {}
        for key, pat in GRAD_KEYS.items():
            hit = next((k for k in value if isinstance(k, str) and re.match(pat, k.lower())), None)
            if hit is not None:
                found[key] = value[hit]
        if len(found) != 3:
            raise InterfaceError(f"{what} returned a dict with keys {sorted(map(str, value))}: cannot tell dQ/dK/dV")
        value = (found["dQ"], found["dK"], found["dV"])
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise InterfaceError(f"{what} returned {type(value).__name__}, expected (dQ, dK, dV)")
    grads = {k: Answer.array(v, f"{what} {k}") for k, v in zip(("dQ", "dK", "dV"), value, strict=True)}
    for k, g in grads.items():
        if g.shape != shape:
            raise InterfaceError(f"{what}: {k} has shape {g.shape}, expected {shape}")
    return grads


class FlashPair:
    """A forward candidate and a backward candidate, callable as forward(...) -> state, backward(dO, state)."""

    def __init__(self, sub: Answer, fwd_cand: Candidate, bwd_cand: Candidate) -> None:
        self.sub = sub
        self.fwd = fa.AttentionForward(sub, fwd_cand)
        self.label = f"{self.fwd.label} + {bwd_cand}"
        owner, _, method = bwd_cand.name.rpartition(".")
        self.bwd_cls: type | None = sub.load(bwd_cand.file, owner) if owner else None
        self.bwd_method = method
        self.bwd_fn: Any = None if owner else bwd_cand.load()

    def forward(self, Q: np.ndarray, K: np.ndarray, V: np.ndarray, tile: int, causal: bool | None) -> dict:
        raw, obj = self.fwd(Q, K, V, tile, causal)
        out, cache = fa.split_output(raw, Q.shape, self.fwd.label)
        return {"O": out, "cache": cache, "obj": obj, "Q": Q, "K": K, "V": V, "tile": tile, "causal": causal}

    def backward(self, dO: np.ndarray, state: dict) -> dict[str, np.ndarray]:
        fn = self.bwd_fn
        if self.bwd_cls is not None:  # a method: of the forward's own instance when it is the same class
            obj = state["obj"]
            if not isinstance(obj, self.bwd_cls):
                obj = fa.construct(self.sub, self.bwd_cls, state["tile"], state["causal"])
            fn = getattr(obj, self.bwd_method)
        cache = state["cache"]
        values: dict[str, Any] = {
            "do": dO, "q": state["Q"], "k": state["K"], "v": state["V"], "o": state["O"], "tile": state["tile"],
        }  # fmt: skip
        L = find_lse(cache, dO.shape[:-1])
        if L is not None:
            values["l"] = L
        if state["causal"] is not None:
            values["causal"] = state["causal"]
        ps = parameters(fn)
        takes_cache = any(re.search(PATTERNS["cache"], p.name.lower()) for p in ps)
        required = [p for p in ps if p.default is p.empty]
        if isinstance(cache, tuple) and not takes_cache and len(required) == 1 + len(cache):
            with guess("the forward's extra outputs passed back one by one"):  # bwd(dO, a, b, c)
                return find_grads(self.sub.call(fn, dO, *cache), dO.shape, qualified_name(fn))
        if cache is not None:
            values["cache"] = cache
        return find_grads(
            self.sub.invoke(fa.bind(fn, values, PATTERNS, ["do", "cache", "tile"])), dO.shape, qualified_name(fn)
        )


def _pairs(sub: Answer) -> list[tuple[Candidate, Candidate]]:
    """(forward, backward) candidate pairs, those from one file and one class first."""
    fwds, bwds = sub.candidates("fwd")[:4], sub.candidates("bwd")[:4]
    if not fwds:
        raise sub.interface_error("fwd")
    if not bwds:
        raise sub.interface_error("bwd")

    def owner(c: Candidate) -> str:
        return c.file + ":" + c.name.rpartition(".")[0]

    pairs = [(f, b) for f in fwds for b in bwds]
    return sorted(
        pairs,
        key=lambda fb: (fb[0].file != fb[1].file, owner(fb[0]) != owner(fb[1]), -fb[0].score - fb[1].score),
    )


_ADAPTERS: dict[int, FlashPair] = {}


def flash_pair(sub: Answer) -> FlashPair:
    """The submission's forward/backward pair, probed once per process on a tiny causal problem."""
    if id(sub) not in _ADAPTERS:

        def probe(pair: FlashPair) -> None:
            Q, K, V = fa.probe_inputs()
            pair.backward(np.ones_like(Q), pair.forward(Q, K, V, 4, None))

        hint = 'e.g. [roles] fwd = "file.py:flash_attention_fwd" and bwd = "file.py:flash_attention_bwd"'
        attempts = [
            Attempt(f"{f} + {b}", partial(FlashPair, sub, f, b), f.documented and b.documented) for f, b in _pairs(sub)
        ]
        _ADAPTERS[id(sub)] = first_working(
            attempts, probe, lambda tried: sub.interface_error("bwd", tried=tried, hint=hint)
        )[0]
    return _ADAPTERS[id(sub)]


def lse_of(state: dict) -> np.ndarray | None:
    """L from the forward's cache, or for a class that keeps its cache on the instance, from its attributes
    (``self.L``, ``self.cache['L']`` ...)."""
    shape = state["O"].shape[:-1]
    found = find_lse(state["cache"], shape)
    obj = state["obj"]
    if found is None and obj is not None and hasattr(obj, "__dict__"):
        attrs = dict(vars(obj))
        found = find_lse(attrs, shape)
        for name, value in attrs.items():
            if found is None and re.search(PATTERNS["cache"], name.lower()):
                found = find_lse(value, shape)
    return found


@entry
def forward(sub: Answer, Q: np.ndarray, K: np.ndarray, V: np.ndarray, tile_size: int, causal=None) -> dict:
    """{O, L}: the forward's output and the logsumexp found in its cache (None when there is none)."""
    pair = flash_pair(sub)
    sub.ready()
    state = pair.forward(Q, K, V, tile_size, causal)
    return {"O": state["O"], "L": lse_of(state)}


@entry
def gradients(sub: Answer, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each case {Q, K, V, dO, tile_size, causal}: {O, dQ, dK, dV} from the submission's own pair."""
    pair = flash_pair(sub)
    sub.ready()
    results = []
    for c in cases:
        state = pair.forward(c["Q"], c["K"], c["V"], c["tile_size"], c.get("causal"))
        results.append({"O": state["O"], **pair.backward(c["dO"], state)})
    return results


@entry
def gradcheck(
    sub: Answer,
    Q: np.ndarray,
    K: np.ndarray,
    V: np.ndarray,
    G: np.ndarray,
    tile_size: int,
    causal: bool,
    eps: float,
    spots: list[list[int]],
) -> dict[str, Any]:
    """The analytic gradients of f = sum(O * G) and central differences of f through the submission's own
    forward: dV at every element, dQ and dK at the index tuples ``spots``."""
    pair = flash_pair(sub)
    sub.ready()
    state = pair.forward(Q, K, V, tile_size, causal)
    grads = pair.backward(G, state)
    inputs = {"Q": Q, "K": K, "V": V}

    def f(name: str, index: tuple[int, ...], step: float) -> float:
        moved = {k: v.copy() if k == name else v for k, v in inputs.items()}
        moved[name][index] += step
        out = pair.forward(moved["Q"], moved["K"], moved["V"], tile_size, causal)["O"]
        return float(np.sum(out.astype(np.float64) * G))

    def central(name: str, indices: list[tuple[int, ...]]) -> np.ndarray:
        return np.array([(f(name, i, eps) - f(name, i, -eps)) / (2 * eps) for i in indices])

    every = list(np.ndindex(V.shape))
    at = [tuple(int(x) for x in s) for s in spots]
    return {
        **grads,
        "fd_dV": central("V", every).reshape(V.shape),
        "fd_dQ": central("Q", at),
        "fd_dK": central("K", at),
    }


@entry
def forward_backward_memory(sub: Answer, seed: int, shape: list[int], tile_size: int) -> dict[str, Any]:
    """Forward + backward on a large causal problem, measured from outside: inputs (Q, K, V, dO from ``seed``)
    are built and the code warmed up before ``sub.ready()``. Returns all of O and dQ: the grading process
    picks the rows it spot-checks after the result has arrived."""
    pair = flash_pair(sub)
    Q, K, V, dO = fa.seeded_inputs(seed, tuple(shape), "float64", count=4)
    sub.ready()
    state = pair.forward(Q, K, V, tile_size, True)
    grads = pair.backward(dO, state)
    return {
        "O": np.asarray(state["O"], dtype=np.float64),
        "dQ": np.asarray(grads["dQ"], dtype=np.float64),
    }
