"""Unit tests of the dflash_verify driver's adaptation (fast, in process, no grading run).

The conventions it reads (mask forms, result shapes, where the correction token sits), the tag vectors that
stand in for embeddings, and how it finds the verifier under the toolkit's probe rule: the prompt's name, a
method on a class, a pattern-found function whose own code raises (the answer's error), and the generation
loop where no verifier can be driven.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pytest_llmchallenges.challenges.dflash_verify.driver import llmc_drive_dflash_verify as driver
from pytest_llmchallenges.challenges.dflash_verify.driver.llmc_dflash_mask import normalize_mask, read_mask
from pytest_llmchallenges.challenges.dflash_verify.driver.llmc_dflash_result import appended_tokens, read_result
from pytest_llmchallenges.challenges.dflash_verify.driver.llmc_dflash_tags import Tags
from pytest_llmchallenges.challenges.dflash_verify.driver.llmc_dflash_verifier import Verifier
from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, SubmissionError
from pytest_llmchallenges.child.llmc_models import MinimalLM

TARGET = {"vocab_size": 50, "d_model": 16, "n_heads": 2, "seed": 0}
ALLOWED = np.array([[True, False, False], [True, True, False], [True, False, True]])


def answer(tmp_path: Path, name: str, text: str) -> Answer:
    """An answer folder holding one file (a name of its own per test: the files are imported by that name)."""
    (tmp_path / name).write_text(textwrap.dedent(text))
    return Answer(tmp_path, driver.ROLES)


# --- masks ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form",
    [
        ALLOWED,
        ~ALLOWED,  # True = blocked: the diagonal tells
        ALLOWED.astype(np.float32),  # 0/1
        np.where(ALLOWED, 0.0, -np.inf),  # additive
        np.where(ALLOWED, 0.0, -1e9),
        ALLOWED[None, None],  # leading singleton axes
    ],
)
def test_normalize_mask_reads_every_form(form: np.ndarray) -> None:
    assert np.array_equal(normalize_mask(form, 3), ALLOWED)


def test_normalize_mask_rejects_a_wrong_shape() -> None:
    with pytest.raises(InterfaceError, match=r"a mask of shape \(2, 2\) for a sequence of length 3"):
        normalize_mask(np.ones((2, 2)), 3)


def test_read_mask_finds_the_matrix_and_names_its_form() -> None:
    additive = np.where(ALLOWED, 0.0, -np.inf)
    assert read_mask((additive, "info"), 3)[1] == "additive"
    assert np.array_equal(read_mask({"mask": ~ALLOWED}, 3)[0], ALLOWED)
    assert read_mask({"mask": ~ALLOWED}, 3)[1] == "bool, True = blocked"
    assert read_mask(np.ones((3, 4)), 3)[1] == "shape (3, 4)"


# --- results --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "out",
    [
        ([4, 5], 6),
        (6, [4, 5]),  # (new_token, accepted)
        {"accepted_tokens": np.array([4, 5]), "new_token": 6},
        SimpleNamespace(accepted=[4.0, 5.0], bonus=np.int64(6)),
        ([4, 5], np.array([6])),
    ],
)
def test_read_result_conventions(out: object) -> None:
    assert read_result(out) == ([4, 5], 6)


def test_read_result_bare_tokens_and_no_new_token() -> None:
    assert read_result([4, 5, 6]) == ([4, 5, 6], None)
    assert read_result(([4], -1)) == ([4], None)
    with pytest.raises(InterfaceError, match="new_token is str"):
        read_result({"accepted": [4], "new_token": "x"})


def test_appended_tokens_reads_the_correction_by_the_tree() -> None:
    tokens, parents = [7, 8, 9], [-1, 0, -1]
    assert appended_tokens([7], 3, tokens, parents) == [7, 3]  # the prompt's: path, then the correction
    assert appended_tokens([7, 3], None, tokens, parents) == [7, 3]  # correction folded in
    assert appended_tokens([7, 3], 3, tokens, parents) == [7, 3]  # folded and repeated
    assert appended_tokens([7, 8], None, tokens, parents) == [7, 8]  # a path to a leaf, no bonus


def test_tags_find_rows_again_after_casts_and_slices() -> None:
    tags = Tags(10, 4, np.dtype(np.float32))
    rows = tags.table[[3, 1]].astype(np.float64)
    assert [r[0] for r in tags.lookup(rows)] == [3, 1]
    hidden = tags.hidden(np.array([2]), np.arange(5.0)[None])
    ((token, logits, _),) = tags.lookup(hidden)
    assert token == 2 and np.array_equal(logits, np.arange(5.0))
    assert tags.lookup(np.zeros((1, 4))) is None


# --- finding the verifier (llmc_probe's rule) -----------------------------------------------------------------
def test_reference_verifier_reproduces_greedy_decoding() -> None:
    root = Path(__file__).resolve().parents[1] / "reference" / "dflash_verify"
    verifier = Verifier(Answer(root, driver.ROLES), TARGET)
    lm = MinimalLM(**TARGET)
    prompt = [1, 2, 3]
    g = lm.greedy(prompt, 3)
    got = verifier.cycle(prompt, [g[0], g[1], (g[1] + 1) % 50], [-1, 0, 0])
    assert got["appended"] == g[:3] and got["passes"] == 1


def test_a_method_is_called_on_its_class_built_with_the_model(tmp_path: Path) -> None:
    sub = answer(
        tmp_path,
        "dfv_method.py",
        """
            class Speculator:
                def __init__(self, target_model):
                    self.model = target_model

                def verify_and_accept(self, prompt_tokens, tree_tokens, tree_parents):
                    assert self.model is not None
                    return [], 7
            """,
    )
    verifier = Verifier(sub, TARGET)
    assert verifier.cycle([1, 2], [3], [-1])["appended"] == [7]


def test_own_error_of_a_pattern_found_verifier_bound_by_name_is_the_answers(tmp_path: Path) -> None:
    """Rule 2: every argument bound by its name, the exception raised in the answer's code: ``error``."""
    sub = answer(
        tmp_path,
        "dfv_raises.py",
        """
            def verify_tree_step(prompt, tree_tokens, parents, model):
                return 1 // 0
            """,
    )
    with pytest.raises(SubmissionError, match="ZeroDivisionError") as info:
        Verifier(sub, TARGET)
    assert info.value.category == "error"


def test_a_guessed_verifier_that_fails_leaves_the_generation_loop(tmp_path: Path) -> None:
    """Rule 3: parameters the names do not tell, bound by position, are a guess; the loop is driven instead."""
    sub = answer(
        tmp_path,
        "dfv_loop.py",
        """
            def verify_step(a, b, c, d):
                return 1 // 0

            def speculative_generate(prompt, target_model, draft_model, max_new_tokens):
                return list(prompt) + [5] * max_new_tokens
            """,
    )
    verifier = Verifier(sub, TARGET)
    assert verifier.verify is None
    assert verifier.cycle([1, 2], [3], [-1])["appended"] == [5]


def test_nothing_to_drive_is_an_interface_error(tmp_path: Path) -> None:
    sub = answer(tmp_path, "dfv_none.py", "def helper(x):\n    return x\n")
    with pytest.raises(InterfaceError, match="no generation loop"):
        Verifier(sub, TARGET)


@pytest.mark.parametrize("signature", ["prompt_len, tree_parents", "parents, p", "n, tree"])
def test_tree_masks_binds_the_prompt_length_and_the_parents(tmp_path: Path, signature: str) -> None:
    first, second = (s.strip() for s in signature.split(","))
    p, parents = (second, first) if "parent" in first else (first, second)
    body = f"""
    import numpy as np

    def build_tree_mask({signature}):
        size = {p} + len({parents})
        m = np.tril(np.ones((size, size), dtype=bool))
        m[{p}:, {p}:] = False
        for i, q in enumerate({parents}):
            m[{p} + i, {p} + i] = True
            while q >= 0:
                m[{p} + i, {p} + q] = True
                q = {parents}[q]
        return np.where(m, 0.0, -np.inf)
    """
    sub = answer(tmp_path, f"dfv_mask_{len(signature)}.py", body)
    out = driver.tree_masks(sub, [{"prompt_len": 2, "parents": [-1, 0, -1]}])
    assert out["forms"] == ["additive"]
    assert out["masks"][0][3].tolist() == [True, True, True, True, False]
    assert out["masks"][0][4].tolist() == [True, True, False, False, True]
