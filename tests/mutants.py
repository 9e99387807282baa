"""Mutants: known-wrong variants of the reference, declared in tests/mutants/<challenge>.toml.

Each table is one mutant: either ``edit`` entries (exact search/replace on a file of the reference, or of
the folder named by ``base``, e.g. an interface variant; the text must occur exactly once, so a change that
silently disarms a mutant fails loudly) or a ``folder`` holding the whole challenge folder. ``catches`` names
the tests that must fail on it.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTANTS_DIR = REPO / "tests" / "mutants"
REFERENCE = REPO / "reference"


@dataclass
class Mutant:
    challenge: str
    name: str
    catches: list[str]
    category: str | None
    why: str
    edits: list[dict[str, str]] = field(default_factory=list)
    folder: Path | None = None
    base: Path | None = None


def load(challenge: str) -> tuple[list[Mutant], dict[str, str]]:
    """The challenge's mutants, and its declared unproven tests (test name -> why no mutant can run here)."""
    path = MUTANTS_DIR / f"{challenge}.toml"
    if not path.exists():
        return [], {}
    data = tomllib.loads(path.read_text())
    meta = data.pop("_meta", {})
    mutants = []
    for name, spec in data.items():
        folder, base = spec.get("folder"), spec.get("base")
        mutants.append(
            Mutant(
                challenge=challenge,
                name=name,
                catches=list(spec["catches"]),
                category=spec.get("category"),
                why=spec.get("why", ""),
                edits=list(spec.get("edit", [])),
                folder=(REPO / folder) if folder else None,
                base=(REPO / base) if base else None,
            )
        )
    return mutants, dict(meta.get("unproven", {}))


def challenges_with_mutants() -> list[str]:
    return sorted(p.stem for p in MUTANTS_DIR.glob("*.toml"))


def materialise(mutant: Mutant, bench: Path) -> Path:
    """Write the mutant as a submission ``bench/<name>/<challenge>/``; returns the submission folder."""
    target = bench / mutant.name / mutant.challenge
    if mutant.folder is not None:
        shutil.copytree(mutant.folder, target)
        return target.parent
    base = mutant.base or REFERENCE / mutant.challenge
    shutil.copytree(base, target, ignore=shutil.ignore_patterns("__pycache__"))
    for edit in mutant.edits:
        file = target / edit["file"]
        text = file.read_text()
        count = text.count(edit["old"])
        if count != 1:
            raise ValueError(
                f"mutant {mutant.challenge}/{mutant.name}: the text to replace occurs {count} times in "
                f"{edit['file']} (must be exactly once): {edit['old'][:80]!r}"
            )
        file.write_text(text.replace(edit["old"], edit["new"]))
    return target.parent
