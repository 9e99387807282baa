"""Declared entry points: the driver functions a suite may call through ``sandbox.run`` or time in an ``Arm``.

A driver marks them with ``@entry``; a suite imports those very functions (``from
pytest_llmchallenges.challenges.<c>.driver.llmc_drive_<c> import gradients``) and passes them to
``sandbox.run``, so that a misspelt name fails at import, where pytest collects the suite, and a static
checker sees it too. The grading process turns the function into its (driver, name) request; the child looks
the name up. Every driver declares its entry points: a string is refused, at collection and at run time alike.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

MARK = "__llmc_entry__"
DRIVER_PREFIX = "llmc_drive_"
PERF_PREFIX = "llmc_perf_"  # efficiency drivers, imported by their own module name
HERE = Path(__file__).resolve().parent
FOLDERS: dict[str, Path] = {}  # every challenge's driver folder, by name (filled by the challenge table)


def entry(fn: F) -> F:
    """Declare ``fn`` an entry point of its driver: a function the grading process may call."""
    setattr(fn, MARK, True)
    return fn


def is_entry(fn: Any) -> bool:
    return callable(fn) and getattr(fn, MARK, False) is True


def driver_of(fn: Any) -> str | None:
    """The driver a function belongs to, as the child imports it: "backwards" for ``llmc_drive_backwards``,
    the module's own name for an efficiency driver (``llmc_perf_backwards``); None for any other function."""
    module = str(getattr(fn, "__module__", "") or "").rpartition(".")[2]
    if module.startswith(PERF_PREFIX):
        return module
    return module[len(DRIVER_PREFIX) :] if module.startswith(DRIVER_PREFIX) else None


def module_of(driver: str) -> str:
    """The module the child imports for a driver: ``llmc_drive_<driver>``, or an efficiency driver's own name."""
    return driver if driver.startswith(PERF_PREFIX) else DRIVER_PREFIX + driver


def declared(driver: str) -> frozenset[str] | None:
    """Names of the ``@entry`` functions of a driver (``llmc_drive_<driver>.py``, or the efficiency driver
    ``llmc_perf_<challenge>.py`` itself), read from its source (nothing is imported); None when the driver
    declares none (the run then refuses every call of it) or does not exist."""
    folder = FOLDERS.get(driver.removeprefix(PERF_PREFIX), HERE)
    return _declared(folder / f"{module_of(driver)}.py")


@cache
def _declared(path: Path) -> frozenset[str] | None:
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any((isinstance(d, ast.Name) and d.id == "entry") or _attr(d, "entry") for d in node.decorator_list)
    }
    return frozenset(names) or None


def _attr(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == name


def request(function: str | Callable[..., Any], default_driver: str) -> tuple[str, str]:
    """(driver, function name) for a call of a declared entry point: ``function`` is the ``@entry`` function
    itself, never its name, so that a checker sees what a suite calls. ValueError, a fault of the grader and
    never of a model, for anything else (``default_driver`` only words the message for a string)."""
    if callable(function):
        driver = driver_of(function)
        name = getattr(function, "__name__", "")
        if driver is None or not is_entry(function):
            raise ValueError(f"{function!r} is not a declared driver entry point (mark it @entry in its driver)")
        return driver, name
    driver = str(function).rpartition(":")[0] or default_driver
    entries = declared(driver)
    listed = f"entries: {', '.join(sorted(entries))}" if entries else "it declares none: mark them @entry"
    module = module_of(driver)
    raise ValueError(f"{module} declares its entry points: pass the function, not the string {function!r} ({listed})")
