"""How the ternary suite reads the numbers an answer's report states (in process, no grading run)."""

from __future__ import annotations

import pytest

from pytest_llmchallenges.challenges.ternary_training.suite import test_ternary_training as suite


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Validation perplexity: 42.1", 42.1),
        ("held-out ppl = 61.3", 61.3),
        ("step 300 | train ppl 9.0 | val ppl 12.5", 12.5),  # the validation figure, not the line's first ppl
        ("final: train perplexity 8.2, validation perplexity 15.75", 15.75),
    ],
)
def test_the_validation_perplexity_is_the_number_after_its_own_mention(line: str, expected: float) -> None:
    assert suite._from_text(line)["val_ppl"] == pytest.approx(expected)


def test_a_training_perplexity_alone_is_no_validation_perplexity() -> None:
    assert "val_ppl" not in suite._from_text("train ppl 9.0")
