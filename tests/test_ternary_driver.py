"""Unit tests of the ternary_training driver's adaptation, in process and without a grading run.

Each convention the driver reads (a projection's return forms and scale layouts, a batching function's return
forms, a config object, a dict or keyword arguments for the model) and each outcome of the probe rule as the
driver applies it (a guessed call or a file that does not import is a failed probe; the answer's own exception
on a call its signature declares is its error).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges.challenges.ternary_training.driver import llmc_drive_ternary_training as driver
from pytest_llmchallenges.challenges.ternary_training.driver import llmc_ternary_model as building
from pytest_llmchallenges.challenges.ternary_training.driver import llmc_ternary_quant as quant
from pytest_llmchallenges.challenges.ternary_training.driver import llmc_ternary_train as training
from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, SubmissionError
from pytest_llmchallenges.child.llmc_entry import is_entry

PROJECT = """
import numpy as np

def {name}(w, group_size=128):
    g = w.reshape(w.shape[0], -1, group_size)
    s = np.abs(g).mean(axis=-1, keepdims=True)
    codes = np.clip(np.rint(g / np.maximum(s, 1e-12)), -1, 1)
    return {ret}
"""


def answer(tmp_path: Path, files: dict[str, str]) -> Answer:
    """An answer folder with uniquely named files (the test process imports them under their plain names)."""
    tag = tmp_path.name.replace("-", "_")
    for name, text in files.items():
        (tmp_path / name.format(tag=tag)).write_text(textwrap.dedent(text))
    return Answer(tmp_path, driver.ROLES)


def ternary(w: np.ndarray) -> np.ndarray:
    g = w.reshape(w.shape[0], -1, 128)
    s = np.abs(g).mean(axis=-1, keepdims=True)
    return (np.clip(np.rint(g / s), -1, 1) * s).reshape(w.shape)


W = np.random.default_rng(0).standard_normal((4, 256)) * 0.05


# -- what a projection returns -------------------------------------------------------------------------------------
def test_projection_read_from_each_return_form() -> None:
    wq = ternary(W)
    codes = np.sign(wq)
    scales = np.abs(W.reshape(4, 2, 128)).mean(axis=-1)
    forms = {
        "projected weights": wq,
        "codes x scales (groups of 128 along the last axis)": (codes, scales),
        "codes and projected weights": {"codes": codes, "w_q": wq},
    }
    for form, out in forms.items():
        got = quant.read_projection(out, W, "f")
        assert got["form"] == form
        np.testing.assert_allclose(got["projected"], wq, rtol=1e-12)


@pytest.mark.parametrize(
    ("n", "layout"),
    [(1, "one scale per tensor"), (8, "groups of 128 along the last axis"), (4 * 256 // 128, "groups of 128")],
)
def test_scales_expand_from_each_layout(n: int, layout: str) -> None:
    full, how = quant.expand_scales(np.arange(1, n + 1, dtype=float), (4, 256))
    assert full.shape == (4, 256) and layout in how


def test_a_return_without_the_weights_shape_is_an_interface_error() -> None:
    with pytest.raises(InterfaceError, match="none with the weight's shape"):
        quant.read_projection(np.zeros((3, 3)), W, "f")


# -- what a batching function returns ------------------------------------------------------------------------------
def test_batches_read_from_each_return_form() -> None:
    x, y = np.arange(12).reshape(3, 4), np.arange(1, 13).reshape(3, 4)
    generator = (pair for pair in [(x, y)])
    for out in ((x, y), {"inputs": x, "targets": y}, generator, [(x, y), (x, y)]):
        got_x, got_y = training.read_batch(out)
        assert got_y is not None
        assert np.array_equal(got_x, x) and np.array_equal(got_y, y)
    windows, none = training.read_batch(np.arange(10).reshape(2, 5))
    assert none is None and windows.shape == (2, 5)


# -- the probe rule, as the driver applies it ----------------------------------------------------------------------
def test_projection_function_driven_by_its_own_signature(tmp_path: Path) -> None:
    sub = answer(tmp_path, {"q_{tag}.py": PROJECT.format(name="ternarize", ret="(codes * s).reshape(w.shape)")})
    out = driver.project(sub, [W])
    assert out["how"] == "function ternarize (projected weights)"
    np.testing.assert_allclose(out["results"][0]["projected"], ternary(W), rtol=1e-6, atol=1e-9)


def test_declared_projection_that_raises_is_the_answers_error(tmp_path: Path) -> None:
    sub = answer(tmp_path, {"q_{tag}.py": "def ternarize(w):\n    raise ValueError('boom')\n"})
    with pytest.raises(SubmissionError, match="boom"):
        driver.project(sub, [W])


def test_a_file_that_does_not_import_is_a_failed_probe(tmp_path: Path) -> None:
    sub = answer(
        tmp_path,
        {
            "broken_{tag}.py": "import no_such_module_here\n\ndef ternarize(w):\n    return w\n",
            "q_{tag}.py": PROJECT.format(name="ternary_projection", ret="(codes * s).reshape(w.shape)"),
        },
    )
    out = driver.project(sub, [W])
    assert out["how"].startswith("function ternary_projection")


def test_nothing_that_fits_is_an_interface_error_naming_the_manifest_fix(tmp_path: Path) -> None:
    sub = answer(tmp_path, {"q_{tag}.py": "def helper(a, b, c):\n    return a\n"})
    with pytest.raises(InterfaceError, match=r"fix: add to llmchallenge.toml: \[roles\] layer"):
        driver.project(sub, [W])


def test_batching_with_its_own_signature_and_the_graders_fallback(tmp_path: Path) -> None:
    sub = answer(
        tmp_path,
        {
            "d_{tag}.py": """
            import numpy as np

            def get_batch(data, batch_size, block_size, rng):
                starts = rng.integers(0, len(data) - block_size - 1, size=batch_size)
                x = np.stack([data[s : s + block_size] for s in starts])
                return x, np.stack([data[s + 1 : s + block_size + 1] for s in starts])
            """
        },
    )
    tokens = np.arange(500)
    out = driver.batch_pairs(sub, tokens, 4, 8)
    assert out["how"].endswith(":get_batch") and np.array_equal(out["y"], out["x"] + 1)
    (tmp_path / "none").mkdir()
    empty = answer(tmp_path / "none", {})
    assert driver.batch_pairs(empty, tokens, 4, 8) == {"tried": []}
    draw, how = training.batcher(empty, tokens, 4, 8)
    x, y = draw()
    assert how.startswith("the grader's batching") and np.array_equal(y, x + 1)


def test_split_given_a_text_or_tokens_is_a_guess(tmp_path: Path) -> None:
    """A split function that takes tokens raises on the text it is first given: a failed probe (which type it
    takes is the grader's guess), and the tokens are tried next."""
    sub = answer(
        tmp_path,
        {
            "s_{tag}.py": """
            import numpy as np

            def split_data(data):
                n = int(0.9 * data.shape[0])
                return data[:n], data[n:]
            """
        },
    )
    out = driver.split(sub, "some text " * 20, np.arange(100))
    assert out["kind"] == "tokens" and len(out["train"]) == 90 and len(out["validation"]) == 10


def test_every_suite_call_is_a_declared_entry() -> None:
    names = ("project", "ste_gradient", "latent_dtype", "model_weights", "batch_pairs", "train", "split")
    assert all(is_entry(getattr(driver, n)) for n in names)


def test_a_pattern_found_quantizer_given_its_weight_by_position_is_a_failed_probe(tmp_path: Path) -> None:
    """Found by a name pattern only, with the weight bound to a parameter whose name says nothing: its exception
    is the grader's guess gone wrong, and the next role (the layer) is tried."""
    sub = answer(tmp_path, {"q_{tag}.py": "def my_quantizer(blob):\n    raise ValueError('boom')\n"})
    with pytest.raises(InterfaceError, match="no usable ternary linear layer class"):
        driver.project(sub, [W])


MODEL = """
import numpy as np

class Config:
    def __init__(self, vocab_size=7, hidden_size=4):
        self.vocab_size, self.hidden_size = vocab_size, hidden_size

class TernaryLM:
    def __init__(self, {params}):
        {sizes}
        self.embed = np.ones((vocab, hidden))
        self.head = np.ones((hidden, vocab))

    def __call__(self, ids):
        return self.embed[ids] @ self.head
"""


@pytest.mark.parametrize(
    ("params", "sizes", "how"),
    [
        ("config", "vocab, hidden = config.vocab_size, config.hidden_size", "TernaryLM(Config(...))"),
        ("vocab_size, d_model", "vocab, hidden = vocab_size, d_model", "TernaryLM(**tiny config)"),
        ("cfg: dict", "vocab, hidden = cfg['vocab_size'], cfg['hidden_size']", "TernaryLM(dict config)"),
    ],
)
def test_the_model_takes_the_tiny_configuration_its_way(tmp_path: Path, params: str, sizes: str, how: str) -> None:
    sub = answer(tmp_path, {"m_{tag}.py": MODEL.format(params=params, sizes=sizes)})
    if "dict" in how:  # a config class the constructor does not take: the dict comes after it fails
        sub = answer(tmp_path, {"m_{tag}.py": MODEL.format(params=params, sizes=sizes).replace("Config", "Cnf")})
    model, built, vocab = building.build_model(sub, 128)
    assert (built, vocab) == (how, 128)
    assert model.embed.shape == (128, 128)
