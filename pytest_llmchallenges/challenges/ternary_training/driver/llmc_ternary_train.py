"""The answer's data and training code: its batching function (token data, or a tokenizer and a text), its
train step with its optimizer (NumPy) or its loss under ``nn.value_and_grad`` and MLX's AdamW (MLX), and its
train/validation split, each called with its own signature and chosen by the toolkit's probe rule.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.ternary_training.driver.llmc_ternary_frame import (
        NAMES,
        bind_named,
        first_line,
        like,
        load,
        mlx,
        to_numpy,
    )
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError, SubmissionError
    from pytest_llmchallenges.child.llmc_bind import bind, parameters, qualified_name
    from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    from llmc_api import Answer, Candidate, InterfaceError, SubmissionError  # type: ignore[no-redef]
    from llmc_bind import bind, parameters, qualified_name  # type: ignore[no-redef]
    from llmc_probe import Attempt, first_working, guess  # type: ignore[no-redef]
    from llmc_ternary_frame import NAMES, bind_named, first_line, like, load, mlx, to_numpy  # type: ignore[no-redef]

TOKENIZER = r"tok(enizer)?$|^enc(oder)?$"


# -- batching --------------------------------------------------------------------------------------------------------
def own_batch(tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator) -> tuple:
    """The grader's batching: random windows of ``tokens`` and the windows one token later."""
    starts = rng.integers(0, len(tokens) - seq_len - 1, size=batch_size)
    x = np.stack([tokens[s : s + seq_len] for s in starts])
    y = np.stack([tokens[s + 1 : s + seq_len + 1] for s in starts])
    return x, y


class _Tokenizer:
    """Stands in for an answer's tokenizer (a Hugging Face one cannot be downloaded here): ``encode`` of any text
    returns the grader's token stream, so a batching function that tokenizes for itself batches those tokens."""

    def __init__(self, tokens: np.ndarray) -> None:
        self.tokens = tokens
        self.vocab_size = int(tokens.max()) + 1
        self.eos_token_id = self.bos_token_id = self.pad_token_id = None

    def encode(self, text: str, *args: Any, **kwargs: Any) -> list[int]:
        return [int(t) for t in self.tokens]

    def __call__(self, text: str, *args: Any, **kwargs: Any) -> dict:
        return {"input_ids": self.encode(text)}


def read_batch(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) from what a batching function returned; (windows, None) when it returns token windows only
    (the shift into inputs and targets is then made by its caller)."""
    if inspect.isgenerator(out):
        out = next(out)
    if isinstance(out, dict):
        x = next((out[k] for k in ("x", "inputs", "input_ids", "input") if k in out), None)
        y = next((out[k] for k in ("y", "targets", "labels", "target") if k in out), None)
        if x is not None and y is not None:
            out = (x, y)
    if isinstance(out, (tuple, list)) and len(out) == 2 and not isinstance(out[0], (int, np.integer)):
        try:
            x, y = (to_numpy(v, "batch").astype(np.int64) for v in out)
            if x.shape == y.shape and x.ndim in (1, 2):
                return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        except InterfaceError:
            pass
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], (tuple, list)) and len(out[0]) == 2:
        return read_batch(out[0])  # a list of (x, y) batches
    if isinstance(out, (tuple, list)):
        out = [to_numpy(v, "batch window") for v in out[:64]]
        if len({a.shape for a in out}) != 1:
            raise InterfaceError(f"batch windows of shapes {sorted({a.shape for a in out})[:3]}")
        out = np.stack(out)
    arr = to_numpy(out, "batch").astype(np.int64)
    if arr.ndim < 2:
        raise InterfaceError(f"batch of shape {arr.shape}")
    return arr.reshape(-1, arr.shape[-1]), None


def call_batcher(
    sub: Answer, fn: Callable[..., Any], tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator
) -> Any:
    """The batching function called with its own signature: token data, or (a stand-in tokenizer, a text), with
    the sizes and a generator."""
    values: dict[str, Any] = {"batch_size": batch_size, "seq_len": seq_len, "rng": rng, "seed": 0}
    tok = next((p.name for p in parameters(fn) if re.search(TOKENIZER, p.name.lower())), None)
    if tok is None:
        return sub.invoke(bind_named(fn, {**values, "data": like(sub, tokens)}, ["data", "batch_size", "seq_len"]))
    values["data"] = "text " * 64
    binding = bind(
        fn,
        {**values, "tok": _Tokenizer(tokens)},
        {"tok": f"^{tok.lower()}$", **{k: NAMES[k] for k in values}},
        ["tok", "data", "batch_size", "seq_len"],
    )
    with guess("a stand-in tokenizer that encodes any text as the grader's tokens"):
        return sub.invoke(binding)


def _pairs(sub: Answer, cand: Candidate, tokens: np.ndarray, batch_size: int, seq_len: int, rng: Any) -> tuple:
    """(candidate, function, x, y) for one batching candidate; windows only leave y None."""
    fn = load(cand)
    return (cand, fn, *read_batch(call_batcher(sub, fn, tokens, batch_size, seq_len, rng)))


def batches(sub: Answer, tokens: np.ndarray, batch_size: int, seq_len: int) -> dict:
    """What the answer's batching function makes of ``tokens``: {how, x, y} for (inputs, targets) pairs,
    {how, windows} for plain windows, {tried} when no batching function can be driven."""
    tried: list[str] = []

    def make(cand: Candidate) -> tuple:
        return _pairs(sub, cand, tokens, batch_size, seq_len, np.random.default_rng(0))

    try:
        (cand, _, x, y), _ = first_working(sub.attempts("batch", make, limit=6), _nothing, _noting(tried))
    except InterfaceError:  # none could be driven: what was tried is the suite's evidence
        return {"tried": tried}
    if y is None:
        return {"how": f"batching {cand}", "windows": x[:64]}
    return {"how": f"batching {cand}", "x": x[:64], "y": y[:64]}


def batcher(sub: Answer, tokens: np.ndarray, batch_size: int, seq_len: int) -> tuple[Callable[[], tuple], str]:
    """The answer's batching where it yields (inputs, targets) pairs, else the grader's (noted in ``how``)."""
    rng = np.random.default_rng(0)

    def make(cand: Candidate) -> tuple:
        found = _pairs(sub, cand, tokens, batch_size, seq_len, rng)
        if found[3] is None:
            raise InterfaceError(f"{cand} returns token windows, not (inputs, targets)")
        return found

    grader = (lambda: own_batch(tokens, batch_size, seq_len, rng)), "the grader's batching (no (x, y) batch function)"
    try:
        (cand, fn, _, _), _ = first_working(sub.attempts("batch", make, limit=6), _nothing, _noting([]))
    except InterfaceError:  # none could be driven
        return grader

    def draw() -> tuple:
        x, y = read_batch(call_batcher(sub, fn, tokens, batch_size, seq_len, rng))
        if y is None:
            raise InterfaceError(f"{qualified_name(fn)} stopped returning (inputs, targets)")
        return x, y

    return draw, f"batching {cand}"


def _nothing(adapter: Any) -> None:
    """The probe of an attempt whose ``make`` has already run the answer once."""


def _noting(tried: list[str]) -> Callable[[list[str]], InterfaceError]:
    """A ``none_fits`` that keeps what was tried, for drivers that fall back to the grader's own way."""

    def none_fits(lines: list[str]) -> InterfaceError:
        tried.extend(lines)
        return InterfaceError("; ".join(lines))

    return none_fits


# -- training steps --------------------------------------------------------------------------------------------------
def _scalar(value: Any) -> float:
    if isinstance(value, (tuple, list)):
        value = value[0]
    if isinstance(value, dict):
        value = next(v for k, v in value.items() if "loss" in str(k).lower())
    return float(to_numpy(value, "loss").reshape(-1)[0])


def _bound_step(sub: Answer, fn: Callable[..., Any], values: dict[str, Any]) -> Callable[[Any, Any], float]:
    def step(x: Any, y: Any) -> float:
        x, y = like(sub, x), like(sub, y)
        binding = bind_named(fn, {**values, "x": x, "y": y, "batch": (x, y)}, ["model", "optimizer", "x", "y", "lr"])
        return _scalar(sub.invoke(binding))

    return step


def _takes_optimizer(fn: Callable[..., Any]) -> bool:
    return any(re.search(NAMES["optimizer"], p.name.lower()) for p in parameters(fn))


def _optimizer(sub: Answer, model: Any, lr: float) -> Any:
    """The answer's optimizer class, constructed over the model's parameters (or the model)."""

    def make(cand: Candidate) -> Any:
        cls = load(cand)
        names = [p.name.lower() for p in parameters(cls)]
        params = model.parameters() if callable(getattr(model, "parameters", None)) else getattr(model, "params", model)
        order = ["params" if "params" in "".join(names) or not names else "model"]
        return sub.invoke(bind_named(cls, {"lr": lr, "params": params, "model": model}, order))

    attempts = sub.attempts("optimizer", make, limit=3)
    return first_working(attempts, _nothing, lambda tried: sub.interface_error("optimizer", tried))[0]


def numpy_stepper(sub: Answer, model: Any, lr: float, first: tuple) -> tuple[Callable[[Any, Any], float], str]:
    """The answer's train step (with its optimizer), probed with one step on ``first``."""

    def make(cand: Candidate) -> tuple[Candidate, Callable[[Any, Any], float]]:
        fn = load(cand)
        values: dict[str, Any] = {"model": model, "lr": lr}
        if _takes_optimizer(fn):
            values["optimizer"] = _optimizer(sub, model, lr)
        return cand, _bound_step(sub, fn, values)

    attempts = sub.attempts("train_step", make, limit=4)
    (cand, step), _ = first_working(
        attempts, lambda made: made[1](*first), lambda tried: sub.interface_error("train_step", tried)
    )
    return step, f"train step {cand}"


def _loss_caller(fn: Callable[..., Any]) -> tuple[Callable[[Any, Any, Any], Any], bool]:
    """loss(model, x, y) for the answer's loss function: (model, x, y) or (model, batch) where the batch is the
    token windows and the function makes the shift itself (it then gets x with y's last token appended)."""
    mx = mlx()[0]  # type: ignore[index]
    required = [p for p in parameters(fn) if p.default is p.empty]
    takes_y = any(re.search(NAMES["y"], p.name.lower()) for p in required) or len(required) >= 3

    def loss_of(m: Any, x: Any, y: Any) -> Any:
        if takes_y:
            b = bind_named(fn, {"model": m, "x": x, "y": y}, ["model", "x", "y"])
        else:
            windows = mx.concatenate([x, y[:, -1:]], axis=1)
            b = bind_named(fn, {"model": m, "x": windows, "batch": windows}, ["model", "x"])
        out = fn(*b.args, **b.kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out

    return loss_of, takes_y


def _grader_loss(m: Any, x: Any, y: Any) -> Any:
    nn = mlx()[1]  # type: ignore[index]
    out = m(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return nn.losses.cross_entropy(out, y).mean()


def _value_and_grad_step(sub: Answer, model: Any, loss_of: Any, opt: Any) -> Callable[[Any, Any], float]:
    mx, nn = mlx()  # type: ignore[misc]
    value_and_grad = nn.value_and_grad(model, loss_of)

    def step(x: Any, y: Any) -> float:
        loss, grads = sub.call(value_and_grad, model, mx.array(x), mx.array(y))
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        return float(loss.item())

    return step


def _mlx_attempts(sub: Answer, model: Any, lr: float, opt: Any, first: tuple) -> Iterator[Attempt]:
    """Train steps (given mlx AdamW where they take an optimizer), then loss functions under
    nn.value_and_grad, then the grader's cross-entropy; each ``make`` probes one step on ``first``."""
    import mlx.optimizers as optim

    def train_step(cand: Candidate) -> tuple[Callable[[Any, Any], float], str]:
        fn = load(cand)
        values: dict[str, Any] = {"model": model, "lr": lr}
        if _takes_optimizer(fn):
            values["optimizer"] = optim.AdamW(learning_rate=lr)
        step = _bound_step(sub, fn, values)
        step(*first)
        return step, f"train step {cand} with mlx AdamW"

    def loss(cand: Candidate) -> tuple[Callable[[Any, Any], float], str]:
        fn = load(cand)
        loss_of, takes_y = _loss_caller(fn)
        step = _value_and_grad_step(sub, model, loss_of, opt)
        if not takes_y:
            with guess("the loss given token windows and no targets"):
                step(*first)
            return step, f"loss {cand}"
        by_position = bind_named(fn, {"model": 0, "x": 0, "y": 0}, ["model", "x", "y"]).by_position
        try:
            step(*first)
        except SubmissionError as exc:  # the loss was called inside value_and_grad: its binding is noted here
            exc.by_position = exc.by_position or by_position
            raise
        return step, f"loss {cand}"

    def grader() -> tuple[Callable[[Any, Any], float], str]:
        step = _value_and_grad_step(sub, model, _grader_loss, opt)
        step(*first)
        return step, "the grader's cross-entropy on the model's logits"

    yield from sub.attempts("train_step", train_step, limit=4) if sub.candidates("train_step") else []
    yield from sub.attempts("loss", loss, limit=4) if sub.candidates("loss") else []
    yield Attempt("the grader's cross-entropy", grader)


def _noted(attempts: Iterable[Attempt], tried: list[str]) -> Iterator[Attempt]:
    """The attempts, each failure also kept in ``tried`` (for the report's note on what did not drive)."""
    for a in attempts:
        yield Attempt(a.label, partial(_keep_failure, a, tried), a.documented)


def _keep_failure(attempt: Attempt, tried: list[str]) -> Any:
    try:
        return attempt.make()
    except Exception as exc:
        tried.append(f"{attempt}: {first_line(exc, 120)}")
        raise


def mlx_stepper(sub: Answer, model: Any, lr: float, first: tuple) -> tuple[Callable[[Any, Any], float], str]:
    """The answer's train step, else its loss function under nn.value_and_grad, else the grader's
    cross-entropy, with MLX's AdamW; the first that takes one step on ``first``."""
    import mlx.optimizers as optim

    opt = optim.AdamW(learning_rate=lr)
    tried: list[str] = []
    (step, label), _ = first_working(
        _noted(_mlx_attempts(sub, model, lr, opt, first), tried),
        _nothing,
        lambda lines: InterfaceError("no way to train the model: " + "; ".join(tried)[:600]),
    )
    if label.startswith("train step"):
        return step, label
    note = f" (not driven: {'; '.join(tried)[:300]})" if tried else ""
    return step, f"{label} under nn.value_and_grad + mlx AdamW{note}"


# -- the train/validation split ----------------------------------------------------------------------------------------
def _split_parts(sub: Answer, fn: Callable[..., Any], data: Any) -> dict:
    with guess(f"a split function given {'a text' if isinstance(data, str) else 'token ids'}"):
        out = sub.invoke(bind_named(fn, {"data": data}, ["data"]))
    if isinstance(out, dict):
        out = [out[k] for k in out if re.search(r"train", str(k))] + [
            out[k] for k in out if re.search(r"val|test|held", str(k))
        ]
    train_part, val_part = out[0], out[1]
    if isinstance(data, str):
        if not isinstance(train_part, str):
            train_part, val_part = "".join(train_part), "".join(val_part)
        return {"kind": "text", "train": train_part, "validation": val_part, "how": qualified_name(fn)}
    return {
        "kind": "tokens",
        "train": to_numpy(train_part, "train split").astype(np.int64),
        "validation": to_numpy(val_part, "validation split").astype(np.int64),
        "how": qualified_name(fn),
    }


def _split_attempts(sub: Answer, text: str, tokens: np.ndarray) -> Iterator[Attempt]:
    for cand in sub.candidates("split")[:4]:
        for data in (text, tokens):
            label = f"{cand} on {type(data).__name__}"
            yield Attempt(label, partial(_split_candidate, sub, cand, data), cand.documented)


def _split_candidate(sub: Answer, cand: Candidate, data: Any) -> dict:
    return _split_parts(sub, load(cand), data)


def split_parts(sub: Answer, text: str, tokens: np.ndarray) -> dict:
    """The answer's train/validation split applied to a text, else (if it takes tokens) to ``tokens``: which
    one a split function takes is the grader's guess, so an exception on either is a failed probe."""
    return first_working(
        _split_attempts(sub, text, tokens), _nothing, lambda tried: sub.interface_error("split", tried)
    )[0]
