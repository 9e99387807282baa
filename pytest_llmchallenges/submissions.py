"""Finding submissions: a folder of challenge folders is one model's submission; a folder of those is a bench."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .challenges import CHALLENGE_NAMES

PACKAGE_DIR = Path(__file__).resolve().parent
# What the scaffold writes into a challenge folder: a folder holding only these was never answered.
SCAFFOLD_FILES = frozenset({"PROMPT.md", "train_data.txt"})
# Files the grader can read as an answer: Python, CUDA/C++ sources, Markdown (code inside, or an explanation).
ANSWER_SUFFIXES = frozenset({".py", ".cu", ".cuh", ".c", ".cc", ".cpp", ".h", ".hpp", ".md"})
MISSING_WORD = "missing"


class SubmissionPathError(ValueError):
    """A --llm-submission path that is not usable; the message is the one line the user sees."""


@dataclass(frozen=True)
class Submission:
    name: str
    path: Path

    def challenge_dir(self, challenge: str) -> Path | None:
        d = self.path / challenge
        return d if d.is_dir() else None

    @property
    def challenges(self) -> list[str]:
        """The challenges this submission answered (a folder with something the grader can read)."""
        return [c for c in CHALLENGE_NAMES if self.missing_reason(c) is None]

    def missing_reason(self, challenge: str) -> str | None:
        """None when the challenge was answered, else why it is missing (one line, starting "missing: ")."""
        d = self.challenge_dir(challenge)
        if d is None:
            return f"{MISSING_WORD}: no {challenge} folder"
        if not any(_is_answer(p, d) for p in d.rglob("*")):
            held = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
            what = f"only the scaffold's {', '.join(held)}" if held else "nothing"
            return f"{MISSING_WORD}: the {challenge} folder holds {what}; no file the grader can read as an answer"
        return None


def _is_answer(path: Path, folder: Path) -> bool:
    """A file the grader can read as an answer: not the scaffold's own, not hidden, not a cache."""
    rel = path.relative_to(folder)
    if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
        return False
    if rel.as_posix() in SCAFFOLD_FILES or rel.name == "llmchallenge.toml":
        return False
    return path.suffix.lower() in ANSWER_SUFFIXES and path.is_file()


def _has_challenges(path: Path) -> bool:
    return any((path / c).is_dir() for c in CHALLENGE_NAMES)


def reference_root() -> Path:
    """The reference solutions: packaged with the wheel, or the repository's reference/ in a checkout."""
    for candidate in (PACKAGE_DIR / "_reference", PACKAGE_DIR.parent / "reference"):
        if _has_challenges(candidate):
            return candidate
    raise SubmissionPathError(
        "--llm-reference: the reference solutions are not installed with this copy of pytest-llmchallenges"
    )


def discover(paths: list[Path]) -> list[Submission]:
    """Submissions under the given paths, in a stable order with unique names."""
    found: list[Submission] = []
    for raw in paths:
        path = raw.expanduser()
        if not path.exists():
            raise SubmissionPathError(
                f"--llm-submission {raw}: no such folder; give a model's folder or a folder of them"
            )
        if not path.is_dir():
            raise SubmissionPathError(f"--llm-submission {raw}: is a file; give a model's folder or a folder of them")
        path = path.resolve()
        if _has_challenges(path):
            found.append(Submission(path.name, path))
            continue
        subs = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".") and _has_challenges(p)]
        if not subs:
            raise SubmissionPathError(
                f"--llm-submission {raw}: holds no challenge folder (expected subfolders named "
                f"{', '.join(CHALLENGE_NAMES)}, or model folders containing them); "
                "create one with: python -m pytest_llmchallenges scaffold -n NAME"
            )
        found += [Submission(p.name, p) for p in subs]
    unique: list[Submission] = []
    seen: dict[str, int] = {}
    for sub in found:
        if any(sub.path == u.path for u in unique):
            continue
        n = seen.get(sub.name, 0)
        seen[sub.name] = n + 1
        unique.append(sub if n == 0 else Submission(f"{sub.name}-{n + 1}", sub.path))
    return unique
