"""Collection-time check of the driver functions a suite calls: a wrong name is the grader's fault.

Every driver declares its entry points (``@entry``, see ``child/llmc_entry.py``); every
``sandbox.run(...)`` in a suite, and every efficiency ``Arm(...)`` (its function: an entry of the
challenge's ``llmc_perf_<c>``), must name one of them through an imported function, which this reads from
the suite's source when pytest collects it. A string, an unknown name or a helper that is not an entry point
fails the collection with one line, before any submission is graded, never as a model's failure.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .child import llmc_entry

_CHECKED: dict[tuple[str, str], list[str]] = {}


def suite_faults(module: ModuleType, challenge: str) -> list[str]:
    """One line per call of ``sandbox.run`` or ``Arm`` (ENTRY_ARGUMENTS) in ``module`` that does not name a
    declared entry point."""
    key = (module.__name__, str(getattr(module, "__file__", "")))
    if key not in _CHECKED:
        _CHECKED[key] = list(_faults(module, challenge))
    return _CHECKED[key]


# Calls whose arguments name a driver function: callee -> (position, keyword) of each such argument, and
# whether the function belongs to the challenge's grading driver or to its efficiency driver (llmc_perf_<c>).
# ``run`` counts only as ``sandbox.run``; ``Arm`` and the helper are efficiency.py's, however imported.
ENTRY_ARGUMENTS: dict[str, tuple[tuple[tuple[int, str], ...], bool]] = {
    "run": (((0, "function"),), False),
    "Arm": (((1, "function"),), True),
    "attention_versus_naive": (((2, "timed"), (3, "baseline")), True),
}


def _faults(module: ModuleType, challenge: str) -> Iterator[str]:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return
    where = Path(getattr(module, "__file__", module.__name__)).name
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or (callee := _callee(node)) is None:
            continue
        slots, perf = ENTRY_ARGUMENTS[callee]
        shown = "sandbox.run" if callee == "run" else callee
        line = f"{where}:{node.lineno}"
        for position, keyword in slots:
            first = _argument(node, position, keyword)
            if first is None:
                yield f"{line}: {shown}() names no driver function"
                continue
            driver = llmc_entry.PERF_PREFIX + challenge if perf else challenge
            if problem := _problem(first, driver, vars(module)):
                yield f"{line}: {shown}({ast.unparse(first)}): {problem}"


def _callee(node: ast.Call) -> str | None:
    """Which of ENTRY_ARGUMENTS' callees ``node`` calls, if any."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name == "run":
        return (
            name
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "sandbox"
            else None
        )
    return name if name in ENTRY_ARGUMENTS else None


def _argument(node: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
        return node.args[position]
    return next((k.value for k in node.keywords if k.arg == keyword), None)


def _problem(arg: ast.expr, driver: str, names: dict[str, Any]) -> str:
    """Why ``arg`` does not name a declared entry point ("" when it does)."""
    text = ast.unparse(arg)
    if isinstance(arg, ast.Constant):
        try:
            llmc_entry.request(str(arg.value), driver)  # always refused: the message says what to pass
        except ValueError as exc:
            return str(exc)
    target = _resolve(arg, names)
    if target is _MISSING:
        return f"{text} is not defined in the suite"
    if not llmc_entry.is_entry(target):
        return "not an @entry function of a driver"
    return ""


_MISSING = object()


def _resolve(node: ast.expr, names: dict[str, Any]) -> Any:
    """The object a name or dotted attribute in the suite's source refers to, from its module globals."""
    if isinstance(node, ast.Name):
        return names.get(node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        return _MISSING if owner is _MISSING else getattr(owner, node.attr, _MISSING)
    return None
