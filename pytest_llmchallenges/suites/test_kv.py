"""Grading tests for the kv prompt: a KV cache for incremental decoding with a ragged batch, no framework.

The prompt names no API, so the grader drives whatever the submission offers (an attention module with
prefill/decode, functions returning a new cache, or a cache with update(k, v) plus an attention function)
through a scripted session: prefill a batch of prompts of different lengths, then single-token decode steps
(and, where the API allows it, multi-token appends). Every output is compared with the oracle: full causal
multi-head attention recomputed from scratch over that sequence's own history, in float64.

Projection weights are symmetric (so x @ W and x @ W.T conventions agree) and the output projection is the
identity. Padding positions of the prompts hold large values, so attending to padding is never a small error.

Where the prompt misleads: it asks to "avoid recomputing attention for past tokens", which a cache does for
keys and values; the scores of the new query against every cached key are still computed at each step, and
that is what the oracle checks. "Batching with variable sequence lengths" means each sequence advances at its
own position: a single shared write position for the whole batch is wrong as soon as the lengths differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges.grading import assert_close, wrong
from pytest_llmchallenges.oracles.kv import session_outputs
from pytest_llmchallenges.sandboxed.llmc_scan import scan_folder

CHALLENGE = "kv"

# Outputs are O(1). A float64 cache reproduces the oracle to ~1e-15; 1e-4 also admits float32 buffers
# (~1e-6), while reading padding, another sequence, another head or a lost history is off by O(0.1) or more.
RTOL = 1e-4
PAD_SCALE = 50.0

FRAMEWORKS = {
    "torch", "jax", "jaxlib", "flax", "tensorflow", "keras", "mxnet", "paddle", "transformers", "vllm",
    "tinygrad", "mlx", "mlx_lm", "xformers", "flash_attn", "triton", "autograd", "chainer", "theano",
}  # fmt: skip


def _symmetric(rng: np.random.Generator, d: int, scale: float = 1.5) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return (a + a.T) / np.sqrt(2 * d) * scale


def _prompt(rng: np.random.Generator, layers: int, lengths: list[int], d: int) -> np.ndarray:
    """Right-padded prompts (L, B, T, D); the padding is large so that reading it is never a small error."""
    steps = max(lengths)
    x = rng.standard_normal((layers, len(lengths), steps, d))
    pad = np.arange(steps)[None, :] >= np.asarray(lengths)[:, None]
    x[:, pad] = PAD_SCALE * rng.standard_normal((layers, int(pad.sum()), d))
    return x


def _spec(
    rng: np.random.Generator,
    *,
    lengths: list[int],
    decode_steps: int,
    num_heads: int = 4,
    head_dim: int = 6,
    layers: int = 1,
    capacity: int = 32,
    extend: list[int] | None = None,
    more_decode_steps: int = 0,
) -> dict:
    d = num_heads * head_dim
    weights = [
        {"wq": _symmetric(rng, d), "wk": _symmetric(rng, d), "wv": _symmetric(rng, d), "wo": np.eye(d)}
        for _ in range(layers)
    ]
    ops = [{"op": "prefill", "x": _prompt(rng, layers, lengths, d), "lengths": np.array(lengths)}]
    ops += [{"op": "decode", "x": rng.standard_normal((layers, len(lengths), d))} for _ in range(decode_steps)]
    if extend is not None:
        ops.append({"op": "extend", "x": _prompt(rng, layers, extend, d), "lengths": np.array(extend)})
        ops += [{"op": "decode", "x": rng.standard_normal((layers, len(lengths), d))} for _ in range(more_decode_steps)]
    return {"num_heads": num_heads, "capacity": capacity, "layers": weights, "ops": ops}


def _describe(op: dict, index: int) -> str:
    return f"op {index} ({op['op']})"


def _compare(result: dict, spec: dict, first: int = 0) -> None:
    """Every op's outputs against the oracle replay of the same script, per layer."""
    if "error" in result:
        wrong(f"the submission raised during {_describe(spec['ops'][result['error']['op']], result['error']['op'])}: "
              f"{result['error']['message']}")  # fmt: skip
    expected = session_outputs(spec["layers"], spec["num_heads"], spec["ops"])
    for index, (got, want) in enumerate(zip(result["outputs"], expected, strict=True)):
        if index < first:
            continue
        for layer in range(want.shape[0]):
            assert_close(got[layer], want[layer], RTOL, f"{_describe(spec['ops'][index], index)}, layer {layer}")


def _run(sandbox, spec: dict, **kw: object) -> dict:
    result = sandbox.run("session", spec, **kw).value
    if "unsupported" in result:
        wrong(f"the API could not run the session: {result['unsupported']}")
    return result


def test_incremental_matches_full_attention(sandbox, rng):
    """Prefill outputs are causal at every position, and each of several decode steps equals full
    recomputation over the sequence's whole history (equal prompt lengths: raggedness is tested apart)."""
    spec = _spec(rng, lengths=[6, 6], decode_steps=5)
    _compare(_run(sandbox, spec), spec)


def test_variable_length_batch(sandbox, rng):
    """A ragged batch (lengths 5, 2, 7, 1): no sequence ever attends to padding or to another sequence, and
    each one's decode steps continue from its own length."""
    spec = _spec(rng, lengths=[5, 2, 7, 1], decode_steps=4)
    _compare(_run(sandbox, spec), spec)


def test_multi_head(sandbox, rng):
    """H = 3 heads of width 5 (D = 15, not a square layout): each head attends with its own slice of q, k, v;
    a reshape-order bug ((B, T, D) read as (B, H, T, Dh)) mixes heads and positions."""
    spec = _spec(rng, lengths=[4, 3], decode_steps=3, num_heads=3, head_dim=5)
    _compare(_run(sandbox, spec), spec)


def test_long_decode_keeps_history(sandbox, rng):
    """Twelve decode steps after a short prompt, all through the submission's own cache handling: a cache
    that is overwritten instead of appended to loses the history, which the later steps expose."""
    spec = _spec(rng, lengths=[2, 3], decode_steps=12)
    _compare(_run(sandbox, spec), spec)


def test_two_layers_separate_caches(sandbox, rng):
    """Two layers, each with its own weights and inputs, run step by step: each layer's cache holds only its
    own keys and values (an aliased buffer, e.g. ``[np.zeros(shape)] * n_layers``, mixes them)."""
    spec = _spec(rng, lengths=[3, 5], decode_steps=3, layers=2)
    _compare(_run(sandbox, spec), spec)


def test_capacity_overflow_raises(sandbox, rng):
    """With capacity 8, prompts of 6 and 3 tokens and three decode steps, sequence 0 needs a 9th slot at the
    third step: the submission must raise there (not earlier), or, if its cache grows, stay exact. Wrapping
    around or clipping silently corrupts the history and fails."""
    spec = _spec(rng, lengths=[6, 3], decode_steps=3, capacity=8)
    spec["expect_error"] = True
    result = sandbox.run("session", spec).value
    overflow_op = 3
    if "error" in result:
        if result["error"]["op"] < overflow_op:
            wrong(f"raised at op {result['error']['op']}, before the capacity was exceeded: "
                  f"{result['error']['message']}")  # fmt: skip
        return  # raised when sequence 0 ran out of room: the required behaviour
    _compare(result, spec)  # no error: the cache must have grown and stayed exact


def test_multi_token_append(sandbox, rng):
    """After prefill and a decode step, a ragged chunk of 3, 1 and 2 tokens is appended in one update, then
    two more decode steps: the chunk is causal within itself and sees each sequence's history. Skipped when
    the API has no way to append several tokens to a non-empty cache."""
    spec = _spec(rng, lengths=[4, 2, 5], decode_steps=1, extend=[3, 1, 2], more_decode_steps=2)
    result = sandbox.run("session", spec).value
    if "unsupported" in result:
        pytest.skip(f"the API cannot append several tokens at once ({result['unsupported']})")
    _compare(result, spec)


def _framework_imports(folder: Path) -> dict[str, set[str]]:
    scan = scan_folder(folder)
    return {f: mods & FRAMEWORKS for f, mods in scan.imports.items() if mods & FRAMEWORKS}


def test_no_frameworks(sandbox, submission, rng):
    """No deep-learning framework (torch, jax, tensorflow, transformers, vllm, ...) imported by any of the
    submission's .py files (even guarded, even in a self-test), nor at run time. NumPy is the allowed substrate."""
    found = _framework_imports(submission.challenge_dir(CHALLENGE))
    if found:
        wrong("framework imported: " + "; ".join(f"{f}: {', '.join(sorted(m))}" for f, m in found.items()))
    result = sandbox.run("session", _spec(rng, lengths=[2, 1], decode_steps=1))
    loaded = sorted(set(result.imports) & FRAMEWORKS)
    if loaded:
        wrong(f"framework imported at run time: {', '.join(loaded)}")
