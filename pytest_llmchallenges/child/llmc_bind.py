"""Binding arguments to a submission's callable: by parameter name first, then by the prompt's order.

Real answers name their parameters freely (``x`` or ``inp``, ``tile_size`` or ``Br``/``Bc``), so a driver
describes each value it has with a regex over parameter names and lets the callable's own signature decide.
What could not be bound by name is bound by position in the order the prompt documents; the binding records
which parameters were, because the probe rule (llmc_probe) treats those calls differently on a candidate that
only a name pattern found.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

try:
    from .llmc_errors import InterfaceError
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_errors import InterfaceError  # type: ignore[no-redef]


class BindError(InterfaceError):
    """A required parameter of the callable is left without a value: this convention does not fit."""


@dataclass
class Binding:
    """Arguments for one call of ``fn``; ``by_position`` names the parameters bound without a name match."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    by_position: tuple[str, ...] = ()


def parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """Named parameters of a callable (no *args/**kwargs); empty when it has no inspectable signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def qualified_name(obj: Any) -> str:
    return getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))


def split_arguments(params: list[inspect.Parameter], given: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional arguments up to the first parameter left at its default, keywords after it."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    gap = False
    for p in params:
        if p.name not in given:
            gap = True
        elif p.kind == p.KEYWORD_ONLY or (gap and p.kind != p.POSITIONAL_ONLY):
            keywords[p.name] = given[p.name]
        else:
            positional.append(given[p.name])
    return tuple(positional), keywords


def bind(
    fn: Callable[..., Any],
    values: Mapping[str, Any],
    patterns: Mapping[str, str],
    order: list[str],
    reusable: tuple[str, ...] = (),
    taken: set[str] | None = None,
) -> Binding:
    """A :class:`Binding` of ``values`` to ``fn``'s parameters.

    Each parameter takes the first value (in ``patterns`` order) whose regex matches its lower-cased name;
    a value serves one parameter only, except those in ``reusable`` (a tile size for both Br and Bc) and those
    in ``taken``, given already elsewhere (to a constructor), which name matches may reuse but position never
    does. Required parameters with unknown names then take the unused values of ``order`` in turn; optional
    ones keep their defaults. BindError when a required parameter is left without a value.
    """
    params = parameters(fn)
    taken = set() if taken is None else taken
    given: dict[str, Any] = {}
    used: set[str] = set()
    unknown = []
    for p in params:
        name = p.name.lower()
        key = next(
            (
                k
                for k, pat in patterns.items()
                if k in values and (k not in used or k in reusable) and re.search(pat, name)
            ),
            None,
        )
        if key is None:
            unknown.append(p)
            continue
        given[p.name] = values[key]
        used.add(key)
    rest = [k for k in order if k in values and k not in used and k not in taken]
    by_position = []
    for p in unknown:
        if p.default is not p.empty or p.name in ("self", "cls"):
            continue
        if not rest:
            raise BindError(f"{qualified_name(fn)}: no value for its required parameter {p.name!r}")
        key = rest.pop(0)
        given[p.name] = values[key]
        used.add(key)
        by_position.append(p.name)
    taken.update(used)
    args, kwargs = split_arguments(params, given)
    return Binding(fn, args, kwargs, tuple(by_position))
