"""Float64 oracle for the kv challenge: full causal multi-head attention over each sequence's own history.

No cache at all: every output is recomputed from the whole history of its sequence, which is what an
incremental implementation must reproduce exactly. A scripted session (prefill, decode, extend operations on
several independent layers) is replayed the same way, with the weights the answer computed with (its own
when it created them, then possibly with biases and applied as ``x @ W.T``) and the driver's input scale.

``explain`` names a failure: it replays an op under the classic wrong behaviours (a non-causal prompt, a
cache overwritten instead of appended to, a decode that reads only position 0, padding read as history) and
says which one the answer's outputs match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]


def _proj(x: np.ndarray, w: Weights, name: str, transpose: bool) -> np.ndarray:
    mat = np.asarray(w[name], np.float64)
    out = x @ (mat.T if transpose else mat)
    bias = w.get("b" + name[1])
    return out if bias is None else out + np.asarray(bias, np.float64)


def attend(xq: np.ndarray, xkv: np.ndarray, w: Weights, num_heads: int, allowed: np.ndarray,
           transpose: bool = False) -> np.ndarray:  # fmt: skip
    """Outputs (n, D) of queries xq (n, D) over keys/values from xkv (m, D), where allowed (n, m) says which
    key each query may see: heads are consecutive Dh-wide slices, scale 1/sqrt(Dh), then the output
    projection."""
    xq, xkv = np.asarray(xq, np.float64), np.asarray(xkv, np.float64)
    q, k, v = _proj(xq, w, "wq", transpose), _proj(xkv, w, "wk", transpose), _proj(xkv, w, "wv", transpose)
    d_model = q.shape[1]
    head_dim = d_model // num_heads
    out = np.empty((len(xq), d_model))
    for h in range(num_heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        scores = np.where(allowed, q[:, cols] @ k[:, cols].T / np.sqrt(head_dim), -np.inf)
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out[:, cols] = (p / p.sum(axis=-1, keepdims=True)) @ v[:, cols]
    return _proj(out, w, "wo", transpose)


def causal_multi_head_attention(
    x: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray, num_heads: int
) -> np.ndarray:
    """Outputs (T, D) of causal self-attention over one sequence x (T, D): position i attends to j <= i."""
    steps = len(x)
    w = {"wq": wq, "wk": wk, "wv": wv, "wo": wo}
    return attend(x, x, w, num_heads, np.tril(np.ones((steps, steps), dtype=bool)))


def _new_rows(op: dict[str, Any], x: np.ndarray, layer: int, b: int) -> np.ndarray:
    return x[layer, b][None] if op["op"] == "decode" else x[layer, b, : int(op["lengths"][b])]


def session_outputs(layers: Sequence[Weights], num_heads: int, ops: Sequence[dict[str, Any]],
                    x_scale: float = 1.0, transpose: bool = False) -> list:  # fmt: skip
    """Expected outputs of a scripted session, in the driver's format.

    ``layers[l]`` holds wq, wk, wv, wo (and bq... when the answer has biases). Each op feeds every layer its
    own input (layers are independent here: the grader tests cache separation, not a residual stream):
    - ``{"op": "prefill" or "extend", "x": (L, B, T, D), "lengths": (B,)}``: sequence b appends its first
      lengths[b] tokens; the expected output is (L, B, T, D) with zeros at padding positions;
    - ``{"op": "decode", "x": (L, B, D)}``: one token per sequence; the expected output is (L, B, D).
    """
    return [_replay(layers, num_heads, ops, i, x_scale, transpose, None) for i in range(len(ops))]


def _replay(layers: Sequence[Weights], num_heads: int, ops: Sequence[dict[str, Any]], index: int,
            x_scale: float, transpose: bool, wrong: str | None) -> np.ndarray:  # fmt: skip
    """Expected output of op ``index``, right or under the named wrong behaviour."""
    xs = [np.asarray(op["x"], np.float64) * x_scale for op in ops[: index + 1]]
    op, x = ops[index], xs[index]
    out = np.zeros_like(x)
    for layer, w in enumerate(layers):
        for b in range(x.shape[1]):
            past = [_new_rows(o, xo, layer, b) for o, xo in zip(ops[:index], xs[:index], strict=True)]
            new = _new_rows(op, x, layer, b)
            if len(new) == 0:
                continue
            history = np.concatenate([*past, new]) if past else new
            n, m = len(new), len(history)
            allowed = np.arange(m)[None, :] <= (m - n + np.arange(n))[:, None]
            keys = history
            if wrong == "not causal":
                allowed = np.ones((n, m), dtype=bool)
            elif wrong == "not causal, padding" and op["op"] != "decode":
                keys = np.concatenate([*past, x[layer, b]]) if past else x[layer, b]
                allowed = np.ones((n, len(keys)), dtype=bool)
            elif wrong == "overwritten" and past:
                keys = np.concatenate([past[-1], new])
                allowed = np.arange(len(keys))[None, :] <= (len(keys) - n + np.arange(n))[:, None]
            elif wrong == "no history":
                keys = new
                allowed = np.arange(n)[None, :] <= np.arange(n)[:, None]
            elif wrong == "position 0":
                keys, allowed = history[:1], np.ones((n, 1), dtype=bool)
            elif wrong == "padding" and index > 0 and ops[0]["op"] == "prefill":
                padded = [xs[0][layer, b], *past[1:], new]
                keys = np.concatenate(padded)
                allowed = np.arange(len(keys))[None, :] <= (len(keys) - n + np.arange(n))[:, None]
            got = attend(new, keys, w, num_heads, allowed, transpose)
            if op["op"] == "decode":
                out[layer, b] = got[-1]
            else:
                out[layer, b, :n] = got
    return out


EXPLANATIONS = {
    "not causal": "not causal: prompt tokens attend to later prompt tokens (the outputs equal attention over the "
    "whole chunk)",
    "not causal, padding": "not causal: prompt tokens attend to later tokens of the chunk, its padding included "
    "(the outputs equal attention over the whole padded chunk)",
    "overwritten": "the cache is overwritten instead of appended to: the output equals attention over only the "
    "previous operation's tokens and the new one",
    "no history": "no history is kept (the cache is overwritten at every step): the output equals attention over "
    "the new tokens alone",
    "position 0": "the decode step attends only to position 0 of its sequence (the output equals that token's value)",
    "padding": "the padding positions of the shorter prompts are read as history (the output equals attention "
    "over the padded prompt)",
}


def closest_error(layers: Sequence[Weights], num_heads: int, ops: Sequence[dict[str, Any]], outputs: Sequence,
                  x_scale: float = 1.0, transpose: bool = False) -> float:  # fmt: skip
    """How well the outputs fit this orientation of the weights: per op, the smallest error against the right
    replay or any named wrong behaviour, summed (a wrong answer still fits its own weights best)."""
    total = 0.0
    for index, got in enumerate(outputs):
        got = np.asarray(got, np.float64)
        errors = [
            float(np.abs(got - _replay(layers, num_heads, ops, index, x_scale, transpose, name)).max())
            for name in [None, *EXPLANATIONS]
        ]
        total += min(errors)
    return total


def explain(layers: Sequence[Weights], num_heads: int, ops: Sequence[dict[str, Any]], index: int,
            got: np.ndarray, x_scale: float = 1.0, transpose: bool = False) -> str | None:  # fmt: skip
    """The wrong behaviour that op ``index``'s outputs match, in words; None when none does."""
    right = _replay(layers, num_heads, ops, index, x_scale, transpose, None)
    got = np.asarray(got, np.float64)
    for name, words in EXPLANATIONS.items():
        other = _replay(layers, num_heads, ops, index, x_scale, transpose, name)
        differs = np.abs(other - right).max(axis=-1) > 1e-6 * max(1.0, float(np.abs(right).max()))
        if not differs.any():
            continue  # this behaviour would not be visible here
        scale = float(np.abs(other[differs]).max()) or 1.0
        if float(np.abs(got[differs] - other[differs]).max()) <= 1e-3 * scale:
            return words
    return None
