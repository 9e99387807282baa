"""Unit tests of the kv driver (challenges/kv/driver): fast, in process, no grading run.

Each calling convention the driver adapts is driven end to end on a tiny session and checked against the kv
oracle: the reference's module class, the interface variants' shapes (weights the module creates, a fused
q|k|v matrix, a cache owning attend, a cache with update + a projecting reader, a writer + reader pair), a
functional ``forward(x, params, cache) -> (out, cache)`` and a decode op that takes x as (B, 1, D). Then each
outcome of the probe rule as the kv driver meets it, and the binding of values by parameter names.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges.challenges.kv.driver import llmc_drive_kv as driver
from pytest_llmchallenges.challenges.kv.driver.llmc_kv_bind import call
from pytest_llmchallenges.challenges.kv.driver.llmc_kv_find import ROLES, find_engine
from pytest_llmchallenges.challenges.kv.driver.llmc_kv_weights import Setup
from pytest_llmchallenges.challenges.kv.suite.test_kv import _expected, _spec
from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, SubmissionError

REPO = Path(__file__).resolve().parents[1]

# A correct attention step over per-sequence lists of keys and values (functional: returns a new cache).
STEP = """
import numpy as np


def _step(x, p, num_heads, cache, lengths):
    single = x.ndim == 2
    x = x[:, None, :] if single else x
    b, t, d = x.shape
    n = np.full(b, t) if lengths is None else np.asarray(lengths)
    empty = [np.zeros((0, d))] * b
    ks, vs = (list(cache["k"]), list(cache["v"])) if cache is not None else (empty, list(empty))
    out, dh = np.zeros((b, t, d)), d // num_heads
    for i in range(b):
        new, p0 = x[i, : n[i]], len(ks[i])
        ks[i] = np.concatenate([ks[i], new @ p["wk"]])
        vs[i] = np.concatenate([vs[i], new @ p["wv"]])
        q = new @ p["wq"]
        future = np.arange(p0 + n[i])[None, :] > (p0 + np.arange(n[i]))[:, None]
        for j in range(num_heads):
            s = slice(j * dh, (j + 1) * dh)
            scores = q[:, s] @ ks[i][:, s].T / np.sqrt(dh)
            scores[future] = -np.inf
            w = np.exp(scores - scores.max(axis=1, keepdims=True))
            out[i, : n[i], s] = (w / w.sum(axis=1, keepdims=True)) @ vs[i][:, s]
        out[i, : n[i]] = out[i, : n[i]] @ p["wo"]
    return (out[:, 0] if single else out), {"k": ks, "v": vs}
"""

FUNCTIONAL = (
    STEP
    + """

def attention_forward(x, params, num_heads, cache=None, lengths=None):
    p = {"wq": params["wq"], "wk": params["wk"], "wv": params["wv"], "wo": params["wo"]}
    return _step(x, p, num_heads, cache, lengths)
"""
)

FLAT_DECODE = (
    STEP
    + """

class Attention:
    def __init__(self, num_heads, wq, wk, wv, wo):
        self.h, self.p, self.cache = num_heads, {"wq": wq, "wk": wk, "wv": wv, "wo": wo}, None

    def prefill(self, x, lengths):
        out, self.cache = _step(x, self.p, self.h, None, lengths)
        return out

    def decode_step(self, x):
        if x.ndim != 3:
            raise ValueError("decode_step takes x as (B, 1, D)")
        out, self.cache = _step(x, self.p, self.h, self.cache, None)
        return out
"""
)

# An attention class taking the grader's weights, for the probe outcomes (its methods are added per test).
ATTENTION = """
import numpy as np


class Attention:
    def __init__(self, num_heads, wq, wk, wv, wo):
        self.h = num_heads
"""


def answer(folder: Path) -> Answer:
    """The driver's view of a folder; its modules are forgotten afterwards (every test loads its own)."""
    return Answer(folder, ROLES)


def written(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


@pytest.fixture(autouse=True)
def forget_modules():  # type: ignore[no-untyped-def]
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if not name.startswith(("pytest_llmchallenges", "tests")):
            del sys.modules[name]


def session(folder: Path, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = _spec(np.random.default_rng(seed), lengths=[3, 1, 2], decode_steps=2, num_heads=2, head_dim=3, layers=2)
    return driver.prefill_and_decode(answer(folder), spec), spec


def assert_matches_oracle(result: dict[str, Any], spec: dict[str, Any]) -> None:
    expected, _ = _expected(result, spec)
    tol = 1e-2 if result.get("storage") == "float16" else 1e-6  # a half-precision cache, as test_kv admits
    assert len(result["outputs"]) == len(expected)
    for got, want in zip(result["outputs"], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# --- each calling convention, driven and checked against the oracle ------------------------------------------
@pytest.mark.parametrize(
    ("folder", "api"),
    [
        ("reference/kv", "class MultiHeadAttention (prefill/decode_step/forward)"),
        ("tests/interface_variants/kv_own_weights/kv", "with the weights it created"),
        ("tests/interface_variants/kv_fused_internal/kv", "with the weights it created"),
        ("tests/interface_variants/kv_cache_attends/kv", "cache SequenceCache: attend"),
        ("tests/interface_variants/kv_projecting_reader/kv", "KVCache.update + attention_with_cache"),
        ("tests/interface_variants/kv_writer_reader/kv", "store_prompt (prefill), KVCache.update + cached_attention"),
    ],
)
def test_known_shapes_are_driven_to_the_oracle(folder: str, api: str) -> None:
    result, spec = session(REPO / folder)
    assert api in result["api"]
    assert_matches_oracle(result, spec)


def test_functional_forward_returning_a_new_cache(tmp_path: Path) -> None:
    """forward(x, params, cache=None) -> (out, cache): given no cache first, the returned state passed back."""
    result, spec = session(written(tmp_path, {"attn_fn.py": FUNCTIONAL}))
    assert result["api"] == "functions attention_forward" and result["ragged"] == "lengths"
    assert_matches_oracle(result, spec)


def test_decode_taking_x_as_b_1_d_is_found_by_its_variant(tmp_path: Path) -> None:
    folder = written(tmp_path, {"attn_cls.py": FLAT_DECODE})
    setup = Setup(1, 2, 2, 4, 16, [{k: np.eye(4) for k in ("wq", "wk", "wv", "wo")}])
    engine = find_engine(answer(folder), setup)
    assert engine.decode_2d is False
    result, spec = session(folder)
    assert_matches_oracle(result, spec)


# --- the probe rule, as the kv driver meets it ---------------------------------------------------------------
def test_nothing_that_matches_is_an_interface_failure_with_the_fix(tmp_path: Path) -> None:
    """No candidate matches any kv role: the answer lacks the API (``interface``), not "not driven"."""
    folder = written(tmp_path, {"a.py": "def unrelated():\n    pass\n"})
    with pytest.raises(InterfaceError) as info:
        session(folder)
    assert not info.value.not_driven
    assert "fix: add to llmchallenge.toml" in str(info.value) and "name the parts in llmchallenge.toml" in str(
        info.value
    )


def test_own_error_of_a_class_bound_by_name_is_the_answers(tmp_path: Path) -> None:
    """A pattern-found attention class called with every argument bound by name raised in its own code, and
    nothing else works: its error, not "not driven"."""
    forward = """
    def forward(self, x, cache=None):
        raise ValueError("broken forward")
"""
    folder = written(tmp_path, {"attn.py": ATTENTION + forward})
    with pytest.raises(SubmissionError, match="broken forward") as info:
        session(folder)
    assert info.value.category == "error"


def test_an_error_on_the_guessed_decode_shape_is_a_failed_probe(tmp_path: Path) -> None:
    """x as (B, 1, D) is the driver's guess: the answer raising on it is noted, never charged to it."""
    methods = """
    def prefill(self, x, lengths):
        return np.zeros_like(x)

    def decode_step(self, x):
        if x.ndim == 3:
            raise ValueError("no 3-D input")
        return np.zeros(7)
"""
    folder = written(tmp_path, {"attn.py": ATTENTION + methods})
    with pytest.raises(InterfaceError) as info:
        session(folder)
    assert info.value.not_driven
    assert "no 3-D input [a failed probe: decode given x as (B, 1, D)]" in str(info.value)


# --- binding by parameter names -------------------------------------------------------------------------------
def echo(**seen: Any) -> dict[str, Any]:
    return seen


def test_call_binds_each_concept_once_by_name_and_keeps_defaults(tmp_path: Path) -> None:
    def fn(hidden_states, n_heads, kv_cache, inputs=None, seq_lens: int = 0):  # type: ignore[no-untyped-def]
        return echo(x=hidden_states, h=n_heads, cache=kv_cache, inputs=inputs, lengths=seq_lens)

    pool = {"x": "X", "num_heads": 2, "cache": "C", "lengths": np.array([1, 2])}
    got = call(answer(tmp_path), fn, pool)
    assert got == {"x": "X", "h": 2, "cache": "C", "inputs": None, "lengths": 0}  # x once; int never an array


def test_call_fills_unknown_names_by_position_and_records_it(tmp_path: Path) -> None:
    def fn(a, b, c=None):  # type: ignore[no-untyped-def]
        return (a, b, c)

    sub = answer(tmp_path)
    assert call(sub, fn, {"x": "X", "cache": "C", "lengths": "L"}, ("x", "cache", "lengths")) == ("X", "C", None)

    def raises(x, a):  # type: ignore[no-untyped-def]
        raise ValueError("boom")

    with pytest.raises(SubmissionError) as info:
        call(sub, raises, {"x": "X", "cache": "C"}, ("x", "cache"))
    assert info.value.by_position == ("a",)
    with pytest.raises(InterfaceError, match="no value for its required parameter 'a'"):
        call(sub, raises, {"x": "X"}, ("x",))


def test_params_dict_holds_the_keys_the_callee_reads(tmp_path: Path) -> None:
    def fn(x, params):  # type: ignore[no-untyped-def]
        return sorted(params), params["W_q"].shape, float(np.asarray(params["b_q"]).sum())

    setup = Setup(1, 1, 1, 3, 4, [{k: np.eye(3) for k in ("wq", "wk", "wv", "wo")}])
    keys, shape, bias = call(answer(tmp_path), fn, {"x": 0, "params": setup.params_for(0)})
    assert keys == ["W_q", "b_q"] and shape == (3, 3) and bias == 0.0
