"""Static reading of a ternary_training answer's source: how inputs and targets, training and validation
data are cut from one sequence.

Why static: answers build their (inputs, labels) pairs and their held-out split inline, inside a ``main()``
that downloads Qwen3-0.6B or trains for minutes, where no driver can reach them. The slices themselves are the
robust observable: ``inputs = b[1:]; labels = b[:-1]`` is wrong whatever the rest of the program does. Nothing
is imported or executed; bounds are evaluated with every free name set to a random integer (twice, so an offset
that depends on those values is reported as unknown rather than guessed).
"""

from __future__ import annotations

import ast
import itertools
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

_INPUTS = re.compile(r"^(x|xb|xs|x_?batch|batch_?x|inputs?|input_?ids|inp|ids_?in|src|x_?ids|in_?ids)$")
_LABELS = re.compile(r"^(y|yb|ys|y_?batch|batch_?y|targets?|labels?|tgt|target_?ids|label_?ids|y_?ids|next_?tokens)$")
_VALIDATION = re.compile(r"(val|valid|validation|eval|held|heldout|test|dev)")
_TRAINING = re.compile(r"train")
_NOT_DATA = re.compile(r"loss|ppl|perplex|acc|metric|hist|curve|log|score|step|time|lr|grad")  # logged numbers
_TRAINS_ON = re.compile(r"batch|train|fit|loader|dataset|sequences|windows|chunks")
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 40


@dataclass(frozen=True)
class Cut:
    """One assignment ``name = ...base[lower:upper]...`` (the slice on the last indexed axis)."""

    file: str
    line: int
    name: str
    base: str
    lower: ast.expr | None
    upper: ast.expr | None
    text: str


@dataclass(frozen=True)
class Shift:
    """An (inputs, labels) pair cut from one base; ``offset`` = labels' start - inputs' start (None: unknown)."""

    inputs: Cut
    labels: Cut
    offset: int | None

    def describe(self) -> str:
        return f"{self.inputs.text}; {self.labels.text} ({self.inputs.file}:{self.inputs.line})"


@dataclass(frozen=True)
class Split:
    """A validation cut and what it shares with training: a disjoint/overlapping train cut, or a whole use."""

    validation: Cut
    training: Cut | None
    overlap: bool | None
    whole_use: str | None  # "prepare_batches(tokenizer, text, ...) at line 545" where the base is used whole

    def describe(self) -> str:
        where = f"{self.validation.file}:{self.validation.line}"
        if self.training is not None:
            return f"{self.training.text}; {self.validation.text} ({where})"
        return f"{self.validation.text} ({where}), while {self.whole_use}"


def python_files(folder: Path) -> list[tuple[str, ast.Module]]:
    """The folder's parsable .py files (hostile input: size-capped, parse failures skipped)."""
    found = []
    for path in sorted(itertools.islice(folder.rglob("*.py"), 10 * MAX_FILES))[:MAX_FILES]:
        rel = path.relative_to(folder).as_posix()
        if any(p.startswith(".") or p == "__pycache__" for p in Path(rel).parts):
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            found.append((rel, ast.parse(path.read_text(encoding="utf-8", errors="replace"))))
        except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return found


def _scopes(tree: ast.AST) -> list[list[ast.AST]]:
    """The nodes of each scope (module, function, lambda), nested scopes excluded from their parent."""
    out: list[list[ast.AST]] = []

    def visit(root: ast.AST) -> None:
        nodes: list[ast.AST] = []
        stack = list(ast.iter_child_nodes(root))
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                visit(node)
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
        out.append(nodes)

    visit(tree)
    return out


def _last_slice(value: ast.expr) -> tuple[str, ast.Slice] | None:
    """(base, slice) of the first subscript in ``value`` that slices (``b[1:]``, ``batch[:, :-1]``)."""
    for node in ast.walk(value):
        if isinstance(node, ast.Subscript):
            sl = node.slice
            if isinstance(sl, ast.Tuple) and sl.elts:
                sl = sl.elts[-1]
            if isinstance(sl, ast.Slice) and sl.step is None:
                return ast.unparse(node.value), sl
    return None


def _assigned(nodes: list[ast.AST]) -> list[tuple[ast.Assign, str, ast.expr]]:
    """(statement, name, value) for every ``name = value`` in the scope, tuple unpacking included."""
    out = []
    for node in nodes:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                out.append((node, target.id, node.value))
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                out += [
                    (node, t.id, v)
                    for t, v in zip(target.elts, node.value.elts, strict=False)
                    if isinstance(t, ast.Name)
                ]
    return out


def _cuts(file: str, nodes: list[ast.AST]) -> list[Cut]:
    cuts = []
    for node, name, value in _assigned(nodes):
        found = _last_slice(value)
        if found is None:
            continue
        base, sl = found
        text = f"{name} = {ast.unparse(value)}"
        cuts.append(Cut(file, node.lineno, name, base, sl.lower, sl.upper, text[:120]))
    return cuts


class _Unknown(Exception):
    pass


def _evaluate(node: ast.expr | None, env: dict[str, float], default: float) -> float:
    """A bound's value with free names from ``env`` (filled on first use); only arithmetic, len/int/min/max."""
    if node is None:
        return default
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, (ast.Name, ast.Attribute)) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
    ):
        key = ast.unparse(node)
        if key not in env:
            env[key] = float(random.Random(f"{env['__seed']}/{key}").randint(10_000, 20_000))
        return env[key]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, env, default)
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, env, default), _evaluate(node.right, env, default)
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        if type(node.op) in ops:
            return ops[type(node.op)]
        if isinstance(node.op, ast.FloorDiv) and b:
            return float(a // b)
        raise _Unknown
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("int", "round")
        and (len(node.args) == 1)
    ):
        return float(math.floor(_evaluate(node.args[0], env, default)))
    raise _Unknown


def _bounds(cut: Cut, seed: int, length: float = math.inf) -> tuple[float, float]:
    env: dict[str, float] = {"__seed": seed}
    return _evaluate(cut.lower, env, 0.0), _evaluate(cut.upper, env, length)


def _offset(inputs: Cut, labels: Cut) -> int | None:
    offsets = set()
    for seed in (1, 2):
        try:
            env: dict[str, float] = {"__seed": seed}
            a, b = _evaluate(inputs.lower, env, 0.0), _evaluate(labels.lower, env, 0.0)
        except _Unknown:
            return None
        if (a < 0) != (b < 0) and not (a == 0 or b == 0):
            return None  # one counted from the end, one from the start
        if (a < 0 or b < 0) and (a == 0 or b == 0):
            return None
        offsets.add(b - a)
    return int(offsets.pop()) if len(offsets) == 1 else None


def label_shifts(folder: Path) -> list[Shift]:
    """Every (inputs, labels) pair cut from the same base in one scope, with its offset."""
    shifts = []
    for file, tree in python_files(folder):
        try:
            for nodes in _scopes(tree):
                cuts = _cuts(file, nodes)
                for x in (c for c in cuts if _INPUTS.match(c.name.lower())):
                    for y in (c for c in cuts if _LABELS.match(c.name.lower()) and c.base == x.base):
                        shifts.append(Shift(x, y, _offset(x, y)))
        except RecursionError:  # a pathologically nested file: nothing read from it
            continue
    return shifts


def _whole_use(base: str, nodes: list[ast.AST], skip_line: int) -> str | None:
    """A call in the scope that takes ``base`` whole (or a name bound to it: ``train_text = text``) and looks
    like it trains on it."""
    names = {base} | {name for _, name, value in _assigned(nodes) if ast.unparse(value) == base}
    for node in nodes:
        if not isinstance(node, ast.Call) or getattr(node, "lineno", 0) == skip_line:
            continue
        name = ast.unparse(node.func).rsplit(".", 1)[-1]
        if not _TRAINS_ON.search(name.lower()):
            continue
        if any(isinstance(a, (ast.Name, ast.Attribute)) and ast.unparse(a) in names for a in node.args):
            return f"{ast.unparse(node)[:80]} (line {node.lineno}) uses {base} whole"
    return None


def validation_splits(folder: Path) -> list[Split]:
    """Every validation cut of a base, with the training cut of the same base (and whether they overlap) or,
    where there is none, the call that trains on the whole base."""
    splits = []
    for file, tree in python_files(folder):
        try:
            splits += _file_splits(file, tree)
        except RecursionError:  # a pathologically nested file: nothing read from it
            continue
    return splits


def _file_splits(file: str, tree: ast.Module) -> list[Split]:
    splits = []
    for nodes in _scopes(tree):
        cuts = [c for c in _cuts(file, nodes) if not _NOT_DATA.search(c.name.lower())]
        for v in (c for c in cuts if _VALIDATION.search(c.name.lower()) and not _TRAINING.search(c.name.lower())):
            trains = [c for c in cuts if _TRAINING.search(c.name.lower()) and c.base == v.base]
            splits += [Split(v, t, _overlap(t, v), None) for t in trains]
            use = None if trains else _whole_use(v.base, nodes, v.line)
            if use:
                splits.append(Split(v, None, True, use))
    return splits


def _overlap(train: Cut, val: Cut) -> bool | None:
    verdicts = set()
    for seed in (1, 2):
        try:
            (a, b), (c, d) = _bounds(train, seed, 1e9), _bounds(val, seed, 1e9)
        except _Unknown:
            return None
        if min(a, b, c, d) < 0:
            return None
        verdicts.add(max(a, c) < min(b, d))
    return verdicts.pop() if len(verdicts) == 1 else None
