"""Challenges from other installed packages: found through an entry point or a pytest hook, checked once,
then added to the challenge table, where the plugin, scaffold, reports, scoring and sandbox find them.

Two ways in, for two kinds of caller: the entry-point group ``pytest_llmchallenges.challenges`` (seen by
every command, the scaffold included) and the hook ``pytest_llmchallenges_register`` (hooks.py; a conftest or
a pytest plugin, seen by pytest runs only). The child process may read a registered challenge's driver folder
and nothing else of its package: see :func:`open_driver`.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from .challenges import BUILTIN, CHALLENGES, DIFFICULTIES, Challenge, from_folder
from .child.llmc_entry import DRIVER_PREFIX, FOLDERS
from .child.llmc_isolate import CHALLENGE_DRIVERS_IN
from .submissions import SubmissionPathError, reference_root

ENTRY_POINT_GROUP = "pytest_llmchallenges.challenges"
CAPABILITIES = ("gpu", "nvcc", "mlx")


class RegistryError(ValueError):
    """A third-party challenge that cannot be used, in one line (a fault of its package, never of a model)."""


def packaged(folder: Path | str, name: str, difficulty: str, summary: str, timeout: float, **kw: Any) -> Challenge:
    """A challenge laid out as one folder, like the built-in ones (``challenges/__init__.py``): ``prompt.md``,
    ``suite/`` (test modules), ``oracle.py`` and ``driver/llmc_drive_<name>.py``; only ``driver/`` is readable
    by the child. Keywords override these places or set the other fields (``not_graded``, ``needs``,
    ``reference``, ``label``)."""
    return from_folder(folder, name, difficulty=difficulty, summary=summary, timeout=timeout, **kw)


def problems(c: Challenge) -> list[str]:
    """Why a challenge cannot be registered (empty when it can)."""
    found = []
    if not c.name.isidentifier() or keyword.iskeyword(c.name) or c.name.startswith("_"):
        found.append(f"name {c.name!r} is not a plain identifier")
    if c.difficulty not in DIFFICULTIES:
        found.append(f"difficulty {c.difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    if not c.timeout > 0:
        found.append(f"timeout {c.timeout!r} is not a positive number of seconds")
    if unknown := [n for n in c.needs if n not in CAPABILITIES]:
        found.append(f"needs {unknown} (known: {', '.join(CAPABILITIES)})")
    if c.package_dir is None or not c.package_dir.is_dir():
        return [*found, f"package_dir {c.package_dir} is not a folder"]
    for what, path in (("prompt", c.prompt), ("suite", c.suite)):
        if path is None or not path.exists():
            found.append(f"{what} {path} does not exist")
        elif c.driver_dir is not None and (path == c.driver_dir or c.driver_dir in path.parents):
            found.append(f"{what} {path} lies inside the driver folder, which the child may read")
    driver = c.driver_dir / f"{DRIVER_PREFIX}{c.name}.py" if c.driver_dir else None
    if driver is None or not driver.is_file():
        found.append(f"driver {driver} does not exist")
    return found


class Registry:
    """What one run (or one scaffold) added to the challenge table; ``clear`` takes it out again."""

    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, challenge: Challenge) -> None:
        if challenge.name in BUILTIN:
            raise RegistryError(f"challenge {challenge.name!r}: a built-in challenge has that name")
        if errors := problems(challenge):
            raise RegistryError(f"challenge {challenge.name!r}: " + "; ".join(errors))
        known = CHALLENGES.get(challenge.name)
        if known is not None and known != challenge:
            raise RegistryError(f"challenge {challenge.name!r} is registered twice, differently")
        if known is None:
            CHALLENGES[challenge.name] = challenge
            if challenge.driver_dir is not None:  # its @entry functions are checked like the built-ins'
                FOLDERS[challenge.name] = challenge.driver_dir
            self.added.append(challenge.name)

    def add_all(self, challenges: Iterable[Challenge]) -> None:
        for challenge in challenges:
            self.add(challenge)

    def clear(self) -> None:
        for name in self.added:
            CHALLENGES.pop(name, None)
            FOLDERS.pop(name, None)
        self.added.clear()


def from_entry_points() -> list[Challenge]:
    """The challenges declared in the entry-point group: each entry is a Challenge, a list of them, or a
    callable returning either."""
    found: list[Challenge] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            obj = obj() if callable(obj) and not isinstance(obj, Challenge) else obj
        except Exception as exc:  # a broken package: one line naming it
            raise RegistryError(f"entry point {ep.name} = {ep.value}: {type(exc).__name__}: {exc}") from None
        items = [obj] if isinstance(obj, Challenge) else list(obj) if isinstance(obj, (list, tuple)) else [obj]
        if bad := [x for x in items if not isinstance(x, Challenge)]:
            raise RegistryError(f"entry point {ep.name} = {ep.value}: gave {bad[0]!r}, not a Challenge")
        found += items
    return found


def load(hook: Any = None) -> Registry:
    """Register the entry points' challenges, then the hook's (``config.hook``); RegistryError on a bad one."""
    registry = Registry()
    try:
        registry.add_all(from_entry_points())
        if hook is not None:
            hook.pytest_llmchallenges_register(registry=registry)
    except RegistryError:
        registry.clear()
        raise
    return registry


def third_party() -> list[Challenge]:
    return [c for c in CHALLENGES.values() if not c.builtin]


def suite_paths() -> list[Path]:
    """Every challenge's suite, built-in and registered, in table order: what a grading run collects."""
    return [c.suite for c in CHALLENGES.values() if c.suite is not None]


def is_suite(path: Path) -> bool:
    return any(path == s or s in path.parents for s in suite_paths())


def reference_dir(challenge: str) -> Path | None:
    """The reference answer's folder for a challenge (its time calibrates the per-call limits, limits.py): a
    registered challenge's own, else the packaged one; None where there is none."""
    spec = CHALLENGES.get(challenge)
    if spec is not None and not spec.builtin:
        found = spec.reference / challenge if spec.reference is not None else None
    else:
        try:
            found = reference_root() / challenge
        except SubmissionPathError:
            return None
    return found if found is not None and found.is_dir() else None


def open_driver(challenge: str, request: dict, plan: dict | None) -> None:
    """Let one call's child import its challenge's driver folders (its own and those it builds on) and
    nothing else of any challenge folder (suites, oracles, prompts): each bound read-only beneath
    ``CHALLENGE_DRIVERS_IN`` where the child has its own root (``plan`` with a mountpoint; the registered
    packages' folders are covered like the grader's own), else added to the Landlock read list. The audit
    hook refuses opens beneath the grader's package and the registered packages in both cases."""
    hidden = [str(c.package_dir) for c in third_party() if c.package_dir is not None]
    if hidden:
        request["hidden"] = hidden
    spec = CHALLENGES.get(challenge)
    folders = [str(d) for d in spec.driver_dirs()] if spec is not None else []
    if not folders:
        return
    if plan is not None and "mountpoint" in plan:
        plan["hidden"] = [*plan["hidden"], *hidden]
        plan["challenge_drivers"] = folders
        request["driver_paths"] = [f"{CHALLENGE_DRIVERS_IN}/{i}" for i in range(len(folders))]
    else:
        request["driver_paths"] = folders
        if "readable" in request:
            request["readable"] = [*request["readable"], *folders]
