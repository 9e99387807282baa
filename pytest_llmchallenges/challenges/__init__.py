"""The challenge table: one folder per challenge, holding its row and everything else about it that ships.

A challenge folder (the built-in ones are the folders beside this file) holds:

- ``challenge.toml``: its row (order, difficulty, label, summary, per-call timeout, what the prompt asks that no
  test can judge, capability needs, files the scaffold copies, other challenges' drivers it builds on);
- ``prompt.md``: the prompt the scaffold writes as PROMPT.md;
- ``suite/``: the grading tests (``test_<name>.py``) and the efficiency tests (``test_efficiency_<name>.py``);
- ``oracle.py``: the grader's own answers;
- ``driver/``: child-side code only (``llmc_drive_<name>.py`` and the modules it is split into,
  ``llmc_perf_<name>.py``), the one part of the folder a sandboxed call may read.

Another installed package adds a folder of the same shape through ``registry.py`` (a pytest hook or an entry
point); it then sits in the same table, so that everything that reads it (markers, scaffold, reports, scoring,
the sandbox) treats it like a built-in one. The core modules know no challenge by name: they read this table.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..child.llmc_entry import FOLDERS as DRIVER_FOLDERS  # where llmc_entry finds each driver's @entry list

DIFFICULTIES = ("medium", "hard", "extra_hard", "research")
DIFFICULTY_WEIGHT = {"medium": 1.0, "hard": 2.0, "extra_hard": 3.0, "research": 3.0}
HERE = Path(__file__).resolve().parent
ROW = "challenge.toml"


@dataclass(frozen=True)
class Challenge:
    name: str
    difficulty: str
    label: str  # the difficulty label of the original scaffold script
    summary: str
    timeout: float  # default seconds per sandboxed call
    not_graded: tuple[str, ...] = field(default=())
    # The CUDA runtime fails under Landlock (cudaErrorOperatingSystem, seen on an H200 host), so calls of a
    # challenge that runs kernels keep the audit-hook write guard but not the kernel-enforced one.
    cuda_runtime: bool = False
    # Where its pieces live. The child may read ``driver_dir`` (and the driver folders of ``uses_drivers``)
    # and nothing else of ``package_dir``: suite, oracle and prompt stay hidden.
    prompt: Path | None = None  # the prompt the scaffold writes as PROMPT.md
    suite: Path | None = None  # a suite module or a folder of them
    driver_dir: Path | None = None  # the folder holding ``llmc_drive_<name>.py`` (child-side code only)
    package_dir: Path | None = None  # the challenge's folder (grader side: suite, oracle, prompt)
    reference: Path | None = None  # a submission folder holding the reference answer in ``<name>/`` (None:
    # the packaged reference/ for a built-in one)
    needs: tuple[str, ...] = field(default=())  # capability markers every test needs: "gpu", "nvcc", "mlx"
    uses_drivers: tuple[str, ...] = field(default=())  # other challenges whose driver folders its driver imports
    scaffold_files: tuple[str, ...] = field(default=())  # files of ``package_dir`` the scaffold copies with the prompt
    builtin: bool = False  # one of the folders beside this file
    order: int = 0  # place in the table (the original scaffold script's order for the built-in ones)

    def driver_dirs(self) -> list[Path]:
        """Every folder a call of this challenge imports driver code from: its own, then those it builds on."""
        own = [self.driver_dir] if self.driver_dir is not None else []
        used = [CHALLENGES[n].driver_dir for n in self.uses_drivers if n in CHALLENGES]
        return [*own, *(d for d in used if d is not None)]


def from_folder(folder: Path | str, name: str | None = None, **fields: Any) -> Challenge:
    """A challenge laid out as one folder: its row from ``challenge.toml`` (where there is one), then
    ``fields`` (which override it), with ``prompt.md``, ``suite/`` and ``driver/`` in their places."""
    root = Path(folder).resolve()
    row: dict[str, Any] = {}
    if (root / ROW).is_file():
        with open(root / ROW, "rb") as f:
            row = tomllib.load(f)
    row |= fields
    for key in ("not_graded", "needs", "uses_drivers", "scaffold_files"):
        if key in row:
            row[key] = tuple(row[key])
    if "difficulty" in row:
        row.setdefault("label", str(row["difficulty"]).replace("_", " ").upper())
    row.setdefault("timeout", 30.0)
    row["timeout"] = float(row["timeout"])
    places = {"prompt": root / "prompt.md", "suite": root / "suite", "driver_dir": root / "driver"}
    return Challenge(name=name or root.name, **{**places, "package_dir": root, **row})


def _builtin() -> dict[str, Challenge]:
    found = [from_folder(d, builtin=True) for d in HERE.iterdir() if (d / ROW).is_file()]
    return {c.name: c for c in sorted(found, key=lambda c: (c.order, c.name))}


CHALLENGES: dict[str, Challenge] = _builtin()
BUILTIN: frozenset[str] = frozenset(CHALLENGES)
DRIVER_FOLDERS.update({c.name: c.driver_dir for c in CHALLENGES.values() if c.driver_dir is not None})


class _Names(Sequence[str]):
    """The challenge names in table order, read live: a challenge registered later is listed everywhere."""

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(CHALLENGES))

    def __len__(self) -> int:
        return len(CHALLENGES)

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        return tuple(CHALLENGES)[index]

    def __contains__(self, name: object) -> bool:
        return name in CHALLENGES

    def __repr__(self) -> str:
        return repr(tuple(CHALLENGES))


CHALLENGE_NAMES: Sequence[str] = _Names()
