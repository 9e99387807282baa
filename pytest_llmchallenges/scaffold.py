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
    spec = CHALLENGES[challenge]
    if spec.prompt is None or not spec.prompt.is_file():
        raise ScaffoldError(f"the {challenge} challenge's prompt is missing from its folder ({spec.prompt})")
    return spec.prompt.read_text()


def guide_text() -> str:
    return _package_file("GUIDE.txt").read_text()


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
    specs = [CHALLENGES[c] for c in CHALLENGE_NAMES]
    extras = {c.name: [(c.package_dir or Path(), f) for f in c.scaffold_files] for c in specs}
    for challenge, files in extras.items():  # before anything is written
        if missing := [f for root, f in files if not (root / f).is_file()]:
            raise ScaffoldError(f"{', '.join(missing)} is missing from the {challenge} challenge's folder")
    lines = []
    for challenge in CHALLENGE_NAMES:
        folder = target / challenge
        folder.mkdir(parents=True)
        (folder / "PROMPT.md").write_text(prompt_text(challenge))
        lines.append(f" [+] {challenge}  ({CHALLENGES[challenge].label})")
        for root, file in extras[challenge]:
            shutil.copyfile(root / file, folder / file)
            lines.append(f" [data] {file}")
    lines += ["", f"Scaffolded {len(CHALLENGE_NAMES)} challenges into '{target}/'", "", guide_text().rstrip()]
    return lines
