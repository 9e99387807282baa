"""Grading tests for the kv prompt: a KV cache for incremental decoding with a ragged batch, no framework.

The prompt names no API, so the grader drives whatever the submission built (see llmc_drive_kv: attention
modules with their own or given weights, functions returning a new cache, a cache with update() plus
attention functions that write or read it, a cache owning attend(q, k, v)) through a scripted session:
prefill a batch of prompts, then single-token decode steps (and, where the API allows it, multi-token
appends). Every output is compared with the oracle: full causal multi-head attention recomputed from scratch
over that sequence's own history, in float64, with the weights the answer computed with.

One property per test, so that one defect fails one test: causality of the prompt is test_causal_prefill's
alone (the others compare decode outputs, and a prompt's last token, which sees the whole prompt either way);
raggedness is test_variable_length_batch's alone (the others use equal lengths). A mismatch that equals a
classic wrong behaviour says so (oracles.kv.explain: not causal, cache overwritten, no history, position 0
only, padding read as history).

The grader's weights are symmetric (so x @ W and x @ W.T conventions agree) with the identity as output
projection; weights an answer created are read and used as they are (their orientation is the one its
outputs fit). Padding positions of the prompts hold large values, so attending to padding is never a small
error.

Where the prompt misleads: it asks to "avoid recomputing attention for past tokens", which a cache does for
keys and values; the scores of the new query against every cached key are still computed at each step, and
that is what the oracle checks; test_past_keys_values_not_recomputed checks the keys and values themselves.
"Batching with variable sequence lengths" means each sequence advances at its own position: a single shared
write position for the whole batch is wrong as soon as the lengths differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges.challenges.kv.driver import llmc_drive_kv as driver
from pytest_llmchallenges.challenges.kv.oracle import closest_error, explain, session_outputs
from pytest_llmchallenges.child.llmc_scan import scan_folder
from pytest_llmchallenges.grading import assert_close, wrong

CHALLENGE = "kv"

# Outputs are O(1). A float64 cache reproduces the oracle to ~1e-15; 1e-4 also admits float32 buffers
# (~1e-6), while reading padding, another sequence, another head or a lost history is off by O(0.1) or more.
# A half-precision cache is a choice the prompt allows (it asks for compression): its rounding (~1e-3
# relative) is admitted with RTOL_HALF when the driver sees float16 storage in the answer's objects.
RTOL = 1e-4
RTOL_HALF = 1e-2
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


def _expected(result: dict, spec: dict) -> tuple[list, bool]:
    """The oracle's outputs with the weights the answer computed with; for weights it created, the
    orientation (x @ W or x @ W.T, the same for all four) its outputs fit best, right or wrong."""
    transpose = False
    if result.get("owned"):
        args = (result["layers"], spec["num_heads"], spec["ops"][: len(result["outputs"])], result["outputs"])
        transpose = closest_error(*args, result["x_scale"], True) < closest_error(*args, result["x_scale"], False)
    return session_outputs(result["layers"], spec["num_heads"], spec["ops"], result["x_scale"], transpose), transpose


def _compare(result: dict, spec: dict, first: int = 0, prefix: str = "", ends_only: bool = False) -> None:
    """Every op's outputs from ``first`` on against the oracle replay of the same script, per layer; a
    mismatch is named when it matches a classic wrong behaviour (oracles.kv.explain). With ``ends_only``, a
    prompt or chunk is checked at each sequence's last new token only, which sees the whole history either
    way (causality is test_causal_prefill's alone)."""
    if "error" in result:
        at = result["error"]["op"]
        wrong(f"{prefix}the submission raised during {_describe(spec['ops'][at], at)}: {result['error']['message']}")
    expected, transpose = _expected(result, spec)
    rtol = RTOL_HALF if result.get("storage") == "float16" else RTOL
    for index, (got, want) in enumerate(zip(result["outputs"], expected, strict=True)):
        if index < first:
            continue
        op = spec["ops"][index]
        ends = ends_only and op["op"] != "decode"
        if ends:
            rows = np.arange(len(op["lengths"]))
            got, want = got[:, rows, np.asarray(op["lengths"]) - 1], want[:, rows, np.asarray(op["lengths"]) - 1]
        for layer in range(want.shape[0]):
            what = f"{prefix}{_describe(op, index)}{', last tokens' if ends else ''}, layer {layer}"
            try:
                assert_close(got[layer], want[layer], rtol, what)
            except AssertionError as exc:
                named = explain(result["layers"], spec["num_heads"], spec["ops"], index, result["outputs"][index],
                                result["x_scale"], transpose)  # fmt: skip
                if named is None:
                    raise
                detail = str(exc)[len(what) + 2 :] if str(exc).startswith(what) else str(exc)
                wrong(f"{what}: {named}; {detail}")


def _run(sandbox, spec: dict, **kw: object) -> dict:
    result = sandbox.run(driver.prefill_and_decode, spec, **kw).value
    if "unsupported" in result:
        wrong(f"the API could not run the session: {result['unsupported']}")
    return result


def test_causal_prefill(sandbox, rng):
    """Prefill of two 6-token prompts: position i of a prompt attends to positions 0 .. i only. An answer
    whose prompt tokens attend to later prompt tokens is "not causal" (decode alone would look fine)."""
    spec = _spec(rng, lengths=[6, 6], decode_steps=0)
    _compare(_run(sandbox, spec), spec)


def test_incremental_matches_full_attention(sandbox, rng):
    """Each of five decode steps after a 6-token prefill equals full causal recomputation over the
    sequence's whole history (equal prompt lengths: raggedness is tested apart; prefill outputs are
    test_causal_prefill's)."""
    spec = _spec(rng, lengths=[6, 6], decode_steps=5)
    _compare(_run(sandbox, spec), spec, first=1)


def test_variable_length_batch(sandbox, rng):
    """A ragged batch (lengths 5, 2, 7, 1): each sequence's decode steps continue from its own length and
    never attend to padding or to another sequence."""
    spec = _spec(rng, lengths=[5, 2, 7, 1], decode_steps=4)
    result = _run(sandbox, spec)
    prefix = "ragged batch (lengths 5, 2, 7, 1): "
    if result.get("ragged") is None:
        prefix += f"the API ({result['api']}) takes no per-sequence lengths, mask or write positions; "
    _compare(result, spec, first=1, prefix=prefix)


def test_multi_head(sandbox, rng):
    """H = 3 heads of width 5 (D = 15, not a square layout): each head attends with its own slice of q, k, v;
    a reshape-order bug ((B, T, D) read as (B, H, T, Dh)) mixes heads and positions. Checked on the decode
    steps and on each prompt's last token (a merge-order bug shows only where T > 1)."""
    spec = _spec(rng, lengths=[4, 4], decode_steps=3, num_heads=3, head_dim=5)
    _compare(_run(sandbox, spec), spec, ends_only=True)


def test_long_decode_keeps_history(sandbox, rng):
    """Twelve decode steps after a short prompt, all through the submission's own cache handling: a cache
    that is overwritten instead of appended to loses the history, which the later steps expose."""
    spec = _spec(rng, lengths=[3, 3], decode_steps=12)
    _compare(_run(sandbox, spec), spec, first=1)


def test_two_layers_separate_caches(sandbox, rng):
    """Two layers, each with its own weights and inputs, run step by step: each layer's cache holds only its
    own keys and values (an aliased buffer, e.g. ``[np.zeros(shape)] * n_layers``, mixes them)."""
    spec = _spec(rng, lengths=[4, 4], decode_steps=3, layers=2)
    _compare(_run(sandbox, spec), spec, first=1)


def test_capacity_overflow_raises(sandbox, rng):
    """With capacity 8, prompts of 6 tokens and three decode steps, the third step needs a 9th slot: the
    submission must raise there (not earlier), or, if its cache grows, stay exact. Wrapping around or
    clipping silently corrupts the history and fails."""
    spec = _spec(rng, lengths=[6, 6], decode_steps=3, capacity=8)
    spec["expect_error"] = True
    result = sandbox.run(driver.prefill_and_decode, spec).value
    overflow_op = 3
    if "error" in result:
        if result["error"]["op"] < overflow_op:
            wrong(f"raised at op {result['error']['op']}, before the capacity was exceeded: "
                  f"{result['error']['message']}")  # fmt: skip
        return  # raised when the cache ran out of room: the required behaviour
    _compare(result, spec, first=1)  # no error: the cache must have grown and stayed exact


def test_multi_token_append(sandbox, rng):
    """After a 4-token prefill and a decode step, a chunk of two tokens per sequence is appended in one
    update, then two more decode steps: the chunk's last token and the steps after it see each sequence's
    whole history (causality inside the chunk is test_causal_prefill's, raggedness test_variable_length_batch's).
    Skipped when the API cannot append several tokens to a non-empty cache: the prompt asks for one at a time."""
    spec = _spec(rng, lengths=[4, 4, 4], decode_steps=1, extend=[2, 2, 2], more_decode_steps=2)
    result = sandbox.run(driver.prefill_and_decode, spec).value
    if "unsupported" in result:
        pytest.skip(f"the API cannot append several tokens at once ({result['unsupported']})")
    _compare(result, spec, first=1, ends_only=True)


def test_past_keys_values_not_recomputed(sandbox, rng):
    """The prompt's "avoid recomputing": the key and value vectors the answer projects through its own W_k and W_v at a
    decode step do not grow with the history (ten steps after a 4-token prompt, two sequences).

    Why this observable is robust: the driver hands the answer (or reads from it) weight matrices that are
    counting views of the same values, so the count is of the answer's own projection work, exact, and
    independent of timing noise, machine load and layout; a cache that re-projects the past does B * (t + 4)
    vectors at step t where one that reuses it does B. Answers whose API receives k and v already projected
    cannot recompute them and pass; when no projection through the weights is visible (they were copied into
    another kind of array), the test is skipped as not observable."""
    spec = _spec(rng, lengths=[4, 4], decode_steps=10)
    result = _run(sandbox, spec)
    if not result.get("projects"):
        return  # the answer's API takes projected k and v: each token is projected once, by the caller
    rows = result["kv_rows"][1:]
    if not any(rows):
        pytest.skip(f"no key/value projection through the answer's weights is observable ({result['api']})")
    first, last = rows[0], rows[-1]
    if last > first:
        wrong(f"past keys/values are recomputed at each step: decode step {len(rows)} projected {last} key/value "
              f"vectors through the answer's W_k/W_v against {first} at step 1 (they grow with the history: "
              f"{rows})")  # fmt: skip


def _framework_imports(folder: Path) -> dict[str, set[str]]:
    scan = scan_folder(folder)
    return {f: mods & FRAMEWORKS for f, mods in scan.imports.items() if mods & FRAMEWORKS}


def test_no_frameworks(sandbox, submission, rng):
    """No deep-learning framework (torch, jax, tensorflow, transformers, vllm, ...) imported by any of the
    submission's .py files (even guarded, even in a self-test), nor at run time. NumPy is the allowed substrate."""
    found = _framework_imports(submission.challenge_dir(CHALLENGE))
    if found:
        wrong("framework imported: " + "; ".join(f"{f}: {', '.join(sorted(m))}" for f, m in found.items()))
    try:
        result = sandbox.run(driver.prefill_and_decode, _spec(rng, lengths=[2, 2], decode_steps=1))
    except AssertionError:
        return  # nothing could be run: the static scan is the whole check (the other tests say why)
    loaded = sorted(set(result.imports) & FRAMEWORKS)
    if loaded:
        wrong(f"framework imported at run time: {', '.join(loaded)}")
