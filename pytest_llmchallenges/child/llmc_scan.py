"""What a submission folder offers, read without importing anything: an AST scan, and the manifest.

Used on both sides: in the child to find candidates for a role, in the grading process to explain an
``interface`` failure and to report files that do not parse.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "llmchallenge.toml"
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", "node_modules", ".venv", "venv"}
_STALE = re.compile(r"(^|[_\-.])(old|orig|bak|backup|copy|draft|v\d+|prev|unused|broken|scratch)([_\-.]|$)")


@dataclass(frozen=True)
class Definition:
    """A top-level function or class, or a method of a top-level class."""

    file: str  # relative to the challenge folder, with forward slashes
    name: str  # "func", "Class" or "Class.method"
    kind: str  # "function", "class" or "method"
    params: tuple[str, ...]  # positional parameters (without self/cls for methods)
    required: int  # positional parameters without a default
    varargs: bool
    line: int

    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)}{', *args' if self.varargs else ''})"


@dataclass
class Scan:
    definitions: list[Definition] = field(default_factory=list)
    parse_errors: dict[str, str] = field(default_factory=dict)  # file -> "line 12: invalid syntax"
    imports: dict[str, set[str]] = field(default_factory=dict)  # file -> top-level modules imported
    files: list[str] = field(default_factory=list)


def python_files(folder: Path, max_depth: int = 3) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        if len(rel.parts) > max_depth or any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]):
            continue
        out.append(path)
    return out


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> tuple[tuple[str, ...], int, bool]:
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    n_defaults = len(args.defaults)
    decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
    if is_method and "staticmethod" not in decorators and positional:
        positional = positional[1:]
    required = max(0, len(positional) - n_defaults)
    return tuple(positional), required, args.vararg is not None


def scan_folder(folder: Path) -> Scan:
    scan = Scan()
    for path in python_files(folder):
        rel = path.relative_to(folder).as_posix()
        scan.files.append(rel)
        try:
            tree = ast.parse(path.read_bytes(), filename=rel)
        except SyntaxError as exc:
            scan.parse_errors[rel] = f"line {exc.lineno}: {exc.msg}"
            continue
        except (ValueError, OSError) as exc:
            scan.parse_errors[rel] = str(exc)
            continue
        mods: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods.add(node.module.split(".")[0])
        scan.imports[rel] = mods
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params, req, var = _params(node, False)
                scan.definitions.append(Definition(rel, node.name, "function", params, req, var, node.lineno))
            elif isinstance(node, ast.ClassDef):
                init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
                params, req, var = _params(init, True) if init else ((), 0, False)
                scan.definitions.append(Definition(rel, node.name, "class", params, req, var, node.lineno))
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("__"):
                        params, req, var = _params(item, True)
                        scan.definitions.append(
                            Definition(rel, f"{node.name}.{item.name}", "method", params, req, var, item.lineno)
                        )
    return scan


def read_manifest(folder: Path) -> dict[str, str]:
    """The ``[roles]`` table of ``llmchallenge.toml``: role -> "file.py:name" (ValueError if malformed)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{MANIFEST} does not parse: {exc}") from None
    roles = data.get("roles", {})
    if not isinstance(roles, dict) or not all(isinstance(v, str) and ":" in v for v in roles.values()):
        raise ValueError(f'{MANIFEST}: [roles] must map role names to "file.py:name" strings')
    return dict(roles)


def looks_stale(file: str) -> bool:
    """File names that suggest an old copy or a test rather than the solution."""
    stem = Path(file).stem.lower()
    return bool(_STALE.search(stem)) or stem.startswith("test") or stem.endswith("_test")
