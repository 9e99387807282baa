"""Collection-time check of the driver functions a suite calls: a wrong name is the grader's fault.

For a challenge whose driver declares its entry points (``@entry``, see ``child/llmc_entry.py``), every
``sandbox.run(...)`` in its suite must name one of them through an imported function, which this reads from
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
    """One line per call of ``sandbox.run`` in ``module`` that does not name a declared entry point (for a
    suite whose driver has not opted in, only calls of drivers that have are checked)."""
    key = (module.__name__, str(getattr(module, "__file__", "")))
    if key not in _CHECKED:
        _CHECKED[key] = list(_faults(module, challenge))
    return _CHECKED[key]


def _faults(module: ModuleType, challenge: str) -> Iterator[str]:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return
    where = Path(getattr(module, "__file__", module.__name__)).name
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "sandbox"
        ):
            continue
        line = f"{where}:{node.lineno}"
        if not node.args:
            yield f"{line}: sandbox.run() names no driver function"
            continue
        first = node.args[0]
        text = ast.unparse(first)
        if isinstance(first, ast.Constant):
            try:
                llmc_entry.request(str(first.value), challenge)  # a name is fine for a driver that declares none
            except ValueError as exc:
                yield f"{line}: sandbox.run({text}): {exc}"
            continue
        if llmc_entry.declared(challenge) is None:
            continue  # this suite's driver has not opted in: it may compute the name
        target = _resolve(first, vars(module))
        if target is _MISSING:
            yield f"{line}: sandbox.run({text}): {text} is not defined in the suite"
        elif not llmc_entry.is_entry(target):
            yield f"{line}: sandbox.run({text}): not an @entry function of a driver"


_MISSING = object()


def _resolve(node: ast.expr, names: dict[str, Any]) -> Any:
    """The object a name or dotted attribute in the suite's source refers to, from its module globals."""
    if isinstance(node, ast.Name):
        return names.get(node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        return _MISSING if owner is _MISSING else getattr(owner, node.attr, _MISSING)
    return None
