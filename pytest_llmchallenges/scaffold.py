"""The scaffold command: what the original deploy_challenges.sh did, from the packaged prompts and those of the
challenges other installed packages declare (their entry points, registry.py)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from . import registry
from .challenges import CHALLENGE_NAMES, CHALLENGES


class ScaffoldError(RuntimeError):
    """A one-line reason the scaffold refused to run."""


def _package_file(name: str) -> Path:
    return Path(str(resources.files("pytest_llmchallenges").joinpath(name)))


def prompt_text(challenge: str) -> str:
    spec = CHALLENGES.get(challenge)
    if spec is not None and spec.prompt is not None:  # a registered challenge's own prompt
        return spec.prompt.read_text()
    return _package_file(f"prompts/{challenge}.md").read_text()


def guide_text() -> str:
    return _package_file("prompts/GUIDE.txt").read_text()


def scaffold(name: str, dest: Path) -> list[str]:
    """Create ``dest/name/<challenge>/PROMPT.md`` for every challenge, the installed packages' ones included;
    returns the lines to print."""
    try:
        added = registry.load()
    except registry.RegistryError as exc:
        raise ScaffoldError(str(exc)) from None
    try:
        return _scaffold(name, dest)
    finally:
        added.clear()


def _scaffold(name: str, dest: Path) -> list[str]:
    if not name or "/" in name or name in (".", ".."):
        raise ScaffoldError(f"invalid model name {name!r}: use a plain folder name")
    target = dest / name
    if target.exists():
        raise ScaffoldError(f"'{target}' already exists. Remove it or pick a different name.")
    data = _package_file("train_data.txt")
    if not data.is_file():
        raise ScaffoldError("train_data.txt is missing from this installation of pytest-llmchallenges")
    lines = []
    for challenge in CHALLENGE_NAMES:
        folder = target / challenge
        folder.mkdir(parents=True)
        (folder / "PROMPT.md").write_text(prompt_text(challenge))
        lines.append(f" [+] {challenge}  ({CHALLENGES[challenge].label})")
        if challenge == "ternary_training":
            shutil.copyfile(data, folder / "train_data.txt")
            lines.append(" [data] train_data.txt")
    lines += ["", f"Scaffolded {len(CHALLENGE_NAMES)} challenges into '{target}/'", "", guide_text().rstrip()]
    return lines
