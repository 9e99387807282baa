"""Per-call time limits derived from the reference's time for the same call (pytest_llmchallenges.limits)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges import limits
from pytest_llmchallenges.challenges.flash_attention.driver import llmc_drive_flash_attention as fa_driver
from pytest_llmchallenges.grading import GradingFailure
from pytest_llmchallenges.submissions import reference_root

HANGS = """
import time

def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    while True:
        time.sleep(1)
"""


def hanging(tmp_path: Path) -> Path:
    folder = tmp_path / "flash_attention"
    folder.mkdir()
    (folder / "flash.py").write_text(HANGS)
    return folder


def box(folder: Path, **kw) -> limits.CalibratedSandbox:
    ref = reference_root() / "flash_attention"
    return limits.CalibratedSandbox("flash_attention", folder, 60.0, test="t_limits", reference_dir=ref, **kw)


def test_a_hung_call_is_cut_at_the_derived_limit(tmp_path):
    """flash_attention's own limit is 60 s; the reference answers this call in well under a second, so the
    hung answer is stopped after MIN_LIMIT_S and the message says where the limit came from."""
    q, k, v = (np.random.default_rng(i).standard_normal((1, 1, 64, 16)) for i in range(3))
    start = time.perf_counter()
    with pytest.raises(GradingFailure) as info:
        box(hanging(tmp_path)).run(fa_driver.forward, q, k, v, 16, causal=True)
    assert info.value.category == "timeout"
    assert "x the reference's" in info.value.reason and "--llm-timeout overrides" in info.value.reason
    assert time.perf_counter() - start < limits.MIN_LIMIT_S + 10


def test_override_and_the_reference_itself_keep_their_limits(tmp_path):
    assert box(hanging(tmp_path), override_timeout=1.0).run  # constructed; the override path is plain Sandbox
    ref = box(reference_root() / "flash_attention")
    assert ref._is_reference()
    q, k, v = (np.random.default_rng(i).standard_normal((1, 1, 32, 8)) for i in range(3))
    ref.run(fa_driver.forward, q, k, v, 8, causal=True)
    assert ("flash_attention", "t_limits", 0) not in limits._REFERENCE_SECONDS or ref._calls == 1


SLOW_IMPORT = """
import time
time.sleep(6)  # e.g. a heavy framework import on a busy machine

def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    import numpy as np
    s = Q @ K.swapaxes(-1, -2) / np.sqrt(Q.shape[-1])
    s = np.where(np.tri(Q.shape[-2], dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ V
"""


def test_import_time_is_not_the_calls(tmp_path):
    """A submission whose import takes longer than the derived limit still gets its call: import time counts
    against the challenge's own limit only."""
    folder = tmp_path / "flash_attention"
    folder.mkdir()
    (folder / "flash.py").write_text(SLOW_IMPORT)
    q, k, v = (np.random.default_rng(i).standard_normal((1, 1, 32, 8)) for i in range(3))
    out = box(folder).run(fa_driver.forward, q, k, v, 8, causal=True).value
    assert out.shape == q.shape
