"""Finding submissions: a folder of challenge folders is one model's submission; a folder of those is a bench."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .challenges import CHALLENGE_NAMES

PACKAGE_DIR = Path(__file__).resolve().parent


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
        return [c for c in CHALLENGE_NAMES if self.challenge_dir(c) is not None]


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
