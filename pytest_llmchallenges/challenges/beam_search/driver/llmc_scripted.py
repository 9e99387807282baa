"""Token models for grading beam search, and the view that shows one to a submission in its own conventions.

``ScriptedLM`` is the prompt's "monkey-patched EOS model": its next-token log-probabilities are prescribed
per *generated suffix* (the tokens after the prompt), never per call count, so a search that calls its model
in any order, batch layout or number of times sees the same tree. Prescribed rows are completed into
normalised distributions (log-softmax leaves them unchanged), so a submission may treat them as logits or as
log-probabilities alike.

``ModelView`` wraps a token model (ScriptedLM, or the grader's MinimalLM through ``MinimalTokenModel``) and
answers the calls a submission makes to *its* model: a (n, L) batch returning (n, V) or (n, L, V), a list of
ragged sequences, one 1-D sequence returning (V,) or (L, V), logits, log-probabilities or probabilities. The
driver learns the layout by probing the submission's own model and installs ``view.method(layouts)`` in its
place. Each row is located by the prompt it contains, so left padding, right padding and per-row calls all
give the same log-probabilities; rows that contain no known prompt are counted (a KV-cache style caller).

Used on both sides: in the child (imported as ``llmc_scripted``) and by the grading process's oracle.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

Distribution = dict[int, float]


def complete_distribution(
    vocab_size: int, given: Distribution, floor: float | None = None, seed: int = 0
) -> np.ndarray:
    """A normalised log-probability row with the ``given`` entries exactly as prescribed.

    The other tokens share the remaining probability mass with nearly equal values, or, with ``floor``, take
    values in (floor - 1, floor]; then the given entries must already carry (almost) all the mass. The
    values are continuous random numbers drawn from ``seed`` (one per context), so that no two paths of the
    tree tie (the same row at every context would make (a, b) and (b, a) tie) and every correct search makes
    the same choices.
    """
    row = np.empty(vocab_size)
    given_idx = np.array(sorted(given), dtype=np.int64)
    free = np.ones(vocab_size, dtype=bool)
    free[given_idx] = False
    others = np.flatnonzero(free)
    jitter = np.random.default_rng(seed).random(len(others))
    if floor is not None:
        row[others] = floor - jitter
    elif len(others):
        mass = 1.0 - sum(np.exp(v) for v in given.values())
        if not mass > 0:
            raise ValueError(f"prescribed probabilities sum to {1 - mass:.6g} >= 1 but leave tokens unassigned")
        weights = 1.0 + 0.5 * jitter
        row[others] = np.log(mass) + np.log(weights / weights.sum())
    for t, v in given.items():
        row[t] = v
    total = np.logaddexp.reduce(row)
    if abs(total) > 1e-9:
        raise ValueError(f"scripted distribution is not normalised: logsumexp = {total:.3g}")
    return row


class ScriptedLM:
    """Next-token log-probabilities looked up by (prompt, generated suffix), with a default elsewhere.

    ``script`` entries are ``(suffix, dist)`` for every prompt or ``(prompt_index, suffix, dist)`` for one;
    ``dist`` maps token -> log-prob (completed by :func:`complete_distribution`) or is a full row.
    """

    def __init__(
        self,
        prompts: Sequence[Sequence[int]],
        vocab_size: int = 1000,
        script: Iterable[Sequence[Any]] = (),
        default: Distribution | None = None,
        floor: float | None = None,
    ) -> None:
        self.prompts = [tuple(int(t) for t in p) for p in prompts]
        self.vocab_size, self.floor = vocab_size, floor
        self._spec_script = [list(e) for e in script]
        self._default_dist = dict(default or {})
        self.table: dict[tuple[int | None, tuple[int, ...]], np.ndarray] = {}
        for entry in self._spec_script:
            index, suffix, dist = (None, *entry) if len(entry) == 2 else entry
            key = (None if index is None or index < 0 else int(index), tuple(int(t) for t in suffix))
            self.table[key] = self._row(dist, key)
        self._defaults: dict[tuple[int | None, tuple[int, ...]], np.ndarray] = {}

    def _row(self, dist: Any, key: tuple[int | None, tuple[int, ...]]) -> np.ndarray:
        if isinstance(dist, dict):
            seed = zlib.crc32(repr(key).encode())
            given = {int(k): float(v) for k, v in dist.items()}
            return complete_distribution(self.vocab_size, given, self.floor, seed)
        row = np.asarray(dist, dtype=np.float64)
        if row.shape != (self.vocab_size,):
            raise ValueError(f"a full scripted row must have shape ({self.vocab_size},), got {row.shape}")
        return row

    # plain data for the sandbox wire ----------------------------------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        script = [
            [
                *e[:-1],
                {int(k): float(v) for k, v in e[-1].items()} if isinstance(e[-1], dict) else np.asarray(e[-1]),
            ]
            for e in self._spec_script
        ]
        return {
            "kind": "scripted",
            "prompts": [list(p) for p in self.prompts],
            "vocab_size": self.vocab_size,
            "script": script,
            "default": self._default_dist,
            "floor": self.floor,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ScriptedLM:
        return cls(spec["prompts"], spec["vocab_size"], spec["script"], spec["default"], spec["floor"])

    # the token-model interface ----------------------------------------------------------------------------
    def next_log_probs(self, prompt_index: int | None, generated: Sequence[int]) -> np.ndarray:
        suffix = tuple(int(t) for t in generated)
        row = self.table.get((prompt_index, suffix))
        if row is None:
            row = self.table.get((None, suffix))
        if row is None:
            row = self._defaults.get((prompt_index, suffix))
        if row is None:
            row = self._defaults[prompt_index, suffix] = self._row(self._default_dist, (prompt_index, suffix))
        return row

    def log_probs(self, prompt_index: int | None, row: np.ndarray) -> np.ndarray:
        """(L, V) for a sequence that starts with prompt ``prompt_index`` (None: no known prompt)."""
        out = np.full((len(row), self.vocab_size), -np.log(self.vocab_size))  # inside the prompt: uniform
        start = len(self.prompts[prompt_index]) if prompt_index is not None else len(row) + 1
        for t in range(start - 1, len(row)):
            out[t] = self.next_log_probs(prompt_index, row[start : t + 1].tolist())
        return out

    def logits(self, prompt_index: int | None, row: np.ndarray) -> np.ndarray:
        """Unnormalised logits: the log-probs shifted by a different constant at every position, so that a
        search which forgets its log-softmax accumulates wrong totals."""
        return self.log_probs(prompt_index, row) + (2.0 + 0.37 * np.arange(len(row)))[:, None]


class MinimalTokenModel:
    """The grader's MinimalLM as a token model: log-softmax of its causal logits."""

    def __init__(self, lm: Any, prompts: Sequence[Sequence[int]]) -> None:
        self.lm, self.vocab_size = lm, lm.vocab_size
        self.prompts = [tuple(int(t) for t in p) for p in prompts]

    def logits(self, prompt_index: int | None, row: np.ndarray) -> np.ndarray:
        return np.asarray(self.lm.logits(np.asarray(row, dtype=np.int64)), dtype=np.float64)

    def log_probs(self, prompt_index: int | None, row: np.ndarray) -> np.ndarray:
        z = self.logits(prompt_index, row)
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def next_log_probs(self, prompt_index: int | None, generated: Sequence[int]) -> np.ndarray:
        prompt = self.prompts[prompt_index] if prompt_index is not None else ()
        return self.log_probs(prompt_index, np.array([*prompt, *generated], dtype=np.int64))[-1]


def locate_prompt(row: np.ndarray, prompts: Sequence[tuple[int, ...]]) -> tuple[int, int | None]:
    """(start, prompt index) of the earliest known prompt inside ``row`` (longest on a tie), or (0, None)."""
    best: tuple[int, int | None] = (len(row) + 1, None)
    values = row.tolist()
    for i, p in enumerate(prompts):
        n = len(p)
        for s in range(0, len(values) - n + 1):
            if s > best[0]:
                break
            if tuple(values[s : s + n]) == p:
                if s < best[0] or (best[1] is not None and n > len(prompts[best[1]])):
                    best = (s, i)
                break
    return best if best[1] is not None else (0, None)


# Output layouts, per input form. n rows, L positions, V vocabulary; "1" a singleton axis; "list-" a list of
# per-row arrays.
LAYOUTS = ("nLV", "nV", "LV", "V", "1LV", "1V", "list-LV", "list-V")
FORMS = ("batch", "seqs", "one")


def input_form(x: Any) -> tuple[str, list[np.ndarray]] | None:
    """Classify what a submission passed as tokens: a 2-D batch, a list of sequences, or one sequence."""
    if isinstance(x, np.ndarray) and x.dtype == object and x.ndim == 1:
        x = list(x)  # a ragged batch kept as an object array
    elif isinstance(x, np.ndarray) or type(x).__module__.split(".")[0] in ("cupy", "mlx", "jax", "torch"):
        arr = np.asarray(x)
        if arr.dtype == object or arr.ndim not in (1, 2) or not np.issubdtype(arr.dtype, np.number):
            return None
        arr = np.rint(arr).astype(np.int64)
        return ("batch", list(arr)) if arr.ndim == 2 else ("one", [arr])
    if isinstance(x, (list, tuple)) and x:
        if all(isinstance(e, (list, tuple, np.ndarray)) for e in x):
            try:
                return "seqs", [np.rint(np.asarray(e, dtype=np.float64)).astype(np.int64).ravel() for e in x]
            except (TypeError, ValueError):
                return None
        if all(isinstance(e, (int, np.integer)) for e in x):
            return "one", [np.asarray(x, dtype=np.int64)]
    return None


def _mask_info(args: Sequence[Any], n: int, length: int) -> np.ndarray | None:
    """Last real position per row, from a lengths vector or an (n, L) padding mask among the extra args."""
    for a in args:
        if a is None or isinstance(a, (bool, str)):
            continue
        try:
            m = np.asarray(a)
        except Exception:
            continue
        if m.dtype == object or m.size == 0:
            continue
        if m.shape == (n,) and np.issubdtype(m.dtype, np.integer) and m.min() > 0 and m.max() <= length:
            return m.astype(np.int64) - 1
        if m.shape == (n, length):
            real = m if m.dtype == bool else (m == 1) if np.all((m == 0) | (m == 1)) else (m > -1e4)
            if real.any(axis=1).all():
                return length - 1 - np.argmax(real[:, ::-1], axis=1)
    return None


class ModelView:
    """A token model answering a submission's calls, shaped like the submission's own model's answers."""

    def __init__(self, base: Any, prompts: Sequence[Sequence[int]]) -> None:
        self.reset(base, prompts)

    def reset(self, base: Any, prompts: Sequence[Sequence[int]]) -> None:
        """Serve another model and prompts from now on (the installed replacements stay), counters at 0."""
        self.base = base
        self.prompts = [tuple(int(t) for t in p) for p in prompts]
        self.vocab_size = base.vocab_size
        self.calls = 0
        self.rows_seen = 0
        self.rows_without_prompt = 0
        self.suffixes: set[tuple[int, ...]] = set()  # generated suffixes of the rows it was asked about

    def row_values(self, row: np.ndarray, kind: str) -> np.ndarray:
        """(L, V): per position, the base model's logits, log-probs or probabilities of the next token;
        padding left of the prompt gets a uniform row, tokens outside the vocabulary (right padding such as
        -1) count as token 0."""
        self.rows_seen += 1
        start, index = locate_prompt(row, self.prompts)
        if index is None:
            self.rows_without_prompt += 1
        else:
            self.suffixes.add(tuple(int(t) for t in row[start + len(self.prompts[index]) :]))
        out = np.full((len(row), self.vocab_size), -np.log(self.vocab_size))
        if len(row) > start:
            body = np.where((row[start:] >= 0) & (row[start:] < self.vocab_size), row[start:], 0)
            out[start:] = self.base.logits(index, body) if kind == "logits" else self.base.log_probs(index, body)
        return np.exp(out) if kind == "prob" else out

    def respond(self, layouts: dict[str, tuple[str, str]], x: Any, extra: Sequence[Any] = ()) -> Any:
        found = input_form(x)
        if found is None:
            raise TypeError(f"grader's model: cannot read tokens from {type(x).__name__}")
        form, rows = found
        layout, kind = layouts.get(form) or _fallback(layouts, form)
        self.calls += 1
        per_row = [self.row_values(r, kind) for r in rows]
        if layout.endswith("LV") and form != "seqs":
            full = np.stack(per_row)
            return full if layout in ("nLV", "1LV") else full[0]
        if layout.endswith("LV"):
            ragged = len({len(r) for r in rows}) > 1
            return per_row if layout == "list-LV" or ragged else np.stack(per_row)
        last = _mask_info(extra, len(rows), len(rows[0])) if form == "batch" else None
        if last is None:
            last = np.array([len(r) - 1 for r in rows])
        picked = np.stack([p[i] for p, i in zip(per_row, last, strict=True)])
        if layout == "list-V":
            return list(picked)
        return picked[0] if layout == "V" else picked

    def method(self, layouts: dict[str, tuple[str, str]], bound: bool) -> Callable[..., Any]:
        """A replacement for a submission's model method (``bound``: takes self) or model function."""
        view = self

        def pick(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
            rest = list(args[1:]) + list(kwargs.values())
            if args:
                return args[0], rest
            for key in kwargs:
                if input_form(kwargs[key]) is not None:
                    return kwargs[key], [v for k, v in kwargs.items() if k != key]
            raise TypeError("grader's model: called without tokens")

        if bound:

            def installed_method(self: Any, *args: Any, **kwargs: Any) -> Any:
                x, rest = pick(args, kwargs)
                return view.respond(layouts, x, rest)

            return installed_method

        def installed_function(*args: Any, **kwargs: Any) -> Any:
            x, rest = pick(args, kwargs)
            return view.respond(layouts, x, rest)

        return installed_function


def _fallback(layouts: dict[str, tuple[str, str]], form: str) -> tuple[str, str]:
    """The layout for an input form the probe did not see answered, by analogy with one that was."""
    for other in ("batch", "seqs", "one"):
        if other in layouts:
            layout, kind = layouts[other]
            full = layout.endswith("LV")
            if form == "one":
                return ("LV" if full else "V"), kind
            return ("nLV" if full else "nV"), kind
    return ("nLV" if form != "one" else "LV"), "logits"


def classify_output(out: Any, form: str, n: int, length: int, vocab_hint: int | None = None) -> tuple[str, str] | None:
    """The layout and kind ("logits", "logprob" or "prob") of a probe's answer, or None if it is no next-token table."""
    if isinstance(out, (list, tuple)) and form == "seqs" and len(out) == n:
        try:
            parts = [np.asarray(o, dtype=np.float64) for o in out]
        except (TypeError, ValueError):
            return None
        if all(p.ndim == 2 for p in parts):
            v = parts[0].shape[1]
            ok = all(p.shape[1] == v for p in parts)
            return ("list-LV", _kind(parts[0])) if ok and v > length else None
        if all(p.ndim == 1 for p in parts) and len({p.shape for p in parts}) == 1:
            out = np.stack(parts)
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim == 0 or arr.shape[-1] <= max(length, 8) or (vocab_hint and arr.shape[-1] != vocab_hint):
        return None
    shape = arr.shape[:-1]
    shapes: dict[str, dict[tuple[int, ...], str]] = {
        "batch": {(n, length): "nLV", (n,): "nV"},
        "seqs": {(n,): "nV"},
        "one": {(length,): "LV", (): "V", (1, length): "1LV", (1,): "1V"},
    }
    layout = shapes[form].get(tuple(shape))
    return (layout, _kind(arr)) if layout else None


def _kind(arr: np.ndarray) -> str:
    """ "prob", "logprob" (rows log-sum-exp to 0) or "logits"."""
    if not np.all(np.isfinite(arr) | (arr == -np.inf)):
        return "logits"
    if np.all(arr >= 0) and np.all(arr <= 1) and np.allclose(arr.sum(axis=-1), 1.0, atol=1e-4):
        return "prob"
    if np.allclose(np.logaddexp.reduce(arr, axis=-1), 0.0, atol=1e-4):
        return "logprob"
    return "logits"
