"""Checks on the packaged challenge prompts and the training corpus.

The prompts must say exactly what the original deploy_challenges.sh said: only whitespace (the indentation
that the script's rendering lost) may differ. train_data.txt must stay within the size the ternary challenge
expects and must not repeat itself, or a model could score low perplexity by memorising duplicates.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "pytest_llmchallenges"
TRAIN_DATA = PACKAGE / "challenges" / "ternary_training" / "train_data.txt"
SEED_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "seed" / "deploy_challenges.sh"

CHALLENGES = (
    "backwards",
    "fuse",
    "kv",
    "beam_search",
    "flash_attention",
    "dflash_verify",
    "flash_attention_bwd",
    "ternary_training",
)

_PROMPT_HEREDOC = re.compile(r"^(\w+)\)\ncat > \"\$path\" << 'EOF'\n(.*?)\nEOF$", re.DOTALL | re.MULTILINE)
_GUIDE_HEREDOC = re.compile(r"^cat << 'INSTRUCTIONS'\n(.*?)\nINSTRUCTIONS$", re.DOTALL | re.MULTILINE)


def _squash(text: str) -> str:
    """The text with all whitespace removed: what must survive indentation repair unchanged."""
    return re.sub(r"\s+", "", text)


def _seed_heredocs() -> dict[str, str]:
    """Prompt heredocs of the seed script by challenge name, plus its difficulty guide under "GUIDE"."""
    if not SEED_SCRIPT.is_file():
        pytest.skip(f"seed script {SEED_SCRIPT} not present (only in the development checkout)")
    source = SEED_SCRIPT.read_text(encoding="utf-8")
    heredocs = {name: body for name, body in _PROMPT_HEREDOC.findall(source)}
    guide = _GUIDE_HEREDOC.search(source)
    assert guide is not None, "no INSTRUCTIONS heredoc found in the seed script"
    heredocs["GUIDE"] = guide.group(1)
    return heredocs


def _prompt_path(name: str) -> Path:
    return PACKAGE / "GUIDE.txt" if name == "GUIDE" else PACKAGE / "challenges" / name / "prompt.md"


@pytest.mark.parametrize("name", [*CHALLENGES, "GUIDE"])
def test_prompt_file_is_well_formed(name: str) -> None:
    text = _prompt_path(name).read_text(encoding="utf-8")
    assert text.strip(), f"{name}: prompt is empty"
    assert text.endswith("\n") and not text.endswith("\n\n"), f"{name}: must end with exactly one newline"
    trailing = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
    assert not trailing, f"{name}: trailing whitespace on lines {trailing}"
    assert "\t" not in text, f"{name}: tabs in prompt"


@pytest.mark.parametrize("name", [*CHALLENGES, "GUIDE"])
def test_prompt_matches_seed_script_up_to_whitespace(name: str) -> None:
    heredocs = _seed_heredocs()
    assert name in heredocs, f"seed script has no heredoc for {name}"
    ours = _prompt_path(name).read_text(encoding="utf-8")
    assert _squash(ours) == _squash(heredocs[name]), f"{name}: wording differs from the seed script"


def test_seed_script_defines_exactly_the_eight_challenges() -> None:
    heredocs = _seed_heredocs()
    assert sorted(set(heredocs) - {"GUIDE"}) == sorted(CHALLENGES)


def _paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def test_train_data_size_and_encoding() -> None:
    raw = TRAIN_DATA.read_bytes()
    assert 200_000 <= len(raw) <= 300_000, f"train_data.txt is {len(raw)} bytes, expected 200-300 KB"
    assert raw.isascii(), "train_data.txt must be plain ASCII"


def test_train_data_paragraphs_are_single_lines_separated_by_blank_lines() -> None:
    text = TRAIN_DATA.read_text(encoding="ascii")
    assert text.endswith("\n") and "\n\n\n" not in text, "paragraphs must be separated by one blank line"
    blocks = text.strip("\n").split("\n\n")
    wrapped = [index for index, block in enumerate(blocks) if "\n" in block or not block.strip()]
    assert not wrapped, f"paragraphs {wrapped[:10]} span several lines (a missing blank line merges two)"


def test_train_data_has_no_duplicated_paragraph() -> None:
    paragraphs = _paragraphs(TRAIN_DATA.read_text(encoding="ascii"))
    assert len(paragraphs) > 100, f"only {len(paragraphs)} paragraphs: expected many short ones"
    seen: dict[str, int] = {}
    duplicates = []
    for index, paragraph in enumerate(paragraphs):
        if paragraph in seen:
            duplicates.append((seen[paragraph], index, paragraph[:60]))
        seen.setdefault(paragraph, index)
    assert not duplicates, f"duplicated paragraphs (first index, repeat index, start): {duplicates}"
