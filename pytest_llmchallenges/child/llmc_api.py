"""The child-side view of a submission that drivers use: roles, candidates, safe calls.

A *role* is something the prompt asks for ("the forward function", "the model class"). A submission's
objects are matched to roles in this order: the folder's ``llmchallenge.toml`` manifest, then the names the
prompt prescribes, then names matching the role's patterns, ranked by an AST scan (no import needed to list
them). Drivers then probe the best candidates on tiny inputs to learn their calling conventions.

Each job has one home: binding arguments is ``llmc_bind``'s, what a failed probe means is ``llmc_probe``'s
(its docstring states the rule), and this module only finds candidates and calls into the answer safely.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

try:
    from . import llmc_probe, llmc_scan
    from .llmc_bind import Binding
    from .llmc_errors import InterfaceError, SubmissionError, SubmissionExit, exc_line
except ImportError:  # inside the child, where this folder is on sys.path
    import llmc_probe  # type: ignore[no-redef]
    import llmc_scan  # type: ignore[no-redef]
    from llmc_bind import Binding  # type: ignore[no-redef]
    from llmc_errors import InterfaceError, SubmissionError, SubmissionExit, exc_line  # type: ignore[no-redef]

__all__ = ["Answer", "Candidate", "InterfaceError", "Role", "SubmissionError", "SubmissionExit"]


@dataclass(frozen=True)
class Role:
    prescribed: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    kind: str = "function"  # "function" (methods rank lower), "class", or "any"
    min_params: int = 0
    description: str = ""


@dataclass
class Candidate:
    role: str
    file: str
    name: str  # attribute path inside the module, e.g. "Flash.backward"
    score: int
    why: str
    _sub: Answer
    documented: bool = False  # named by the manifest or the prompt (see llmc_probe's rule 2)

    def load(self) -> Any:
        return self._sub.load(self.file, self.name)

    def __str__(self) -> str:
        return f"{self.file}:{self.name}"


class Answer:
    """One answer: a submission's folder for one challenge, as a driver sees it inside the sandbox (cwd is its
    temp copy). The grading process's ``submissions.Submission`` is the model's whole folder, never this."""

    def __init__(self, root: Path, roles: dict[str, Role], ready: Callable[[], None] | None = None) -> None:
        self.root = root.resolve()
        self.roles = roles
        self._ready = ready
        self._modules: dict[str, Any] = {}
        self._scan: llmc_scan.Scan | None = None
        self._manifest: dict[str, str] | None = None
        self.on_phase: Callable[[str], None] = lambda phase: None

    # -- discovery -----------------------------------------------------------------------------------------
    @property
    def scan(self) -> llmc_scan.Scan:
        if self._scan is None:
            self._scan = llmc_scan.scan_folder(self.root)
        return self._scan

    @property
    def manifest(self) -> dict[str, str]:
        if self._manifest is None:
            try:
                self._manifest = llmc_scan.read_manifest(self.root)
            except ValueError as exc:
                raise InterfaceError(str(exc)) from None
        return self._manifest

    def candidates(self, role_name: str) -> list[Candidate]:
        """A role's candidates, best first: the manifest's entry alone, else the definitions whose short name
        the prompt prescribes or a pattern matches, ranked down for methods, too few parameters and files that
        look like tests or old copies (the AST scan: nothing is imported to rank)."""
        role = self.roles[role_name]
        manifest = self.manifest
        if role_name in manifest:
            file, _, name = manifest[role_name].partition(":")
            return [Candidate(role_name, file, name, 1000, "named in llmchallenge.toml", self, documented=True)]
        prescribed = [p.lower() for p in role.prescribed]
        found: list[Candidate] = []
        for d in self.scan.definitions:
            if (role.kind == "class" and d.kind != "class") or (role.kind == "function" and d.kind == "class"):
                continue
            short = d.name.rsplit(".", 1)[-1].lower()
            if short in prescribed:
                score, why = (100 if d.kind != "method" else 80), "the prompt's name"
            else:
                hit = next((i for i, p in enumerate(role.patterns) if re.search(p, short)), None)
                if hit is None:
                    continue
                score, why = 60 - hit - (20 if d.kind == "method" else 0), f"name matches {role.patterns[hit]!r}"
            if role.min_params and d.kind != "class" and len(d.params) < role.min_params and not d.varargs:
                score -= 50
                why += f", but takes {len(d.params)} positional parameters"
            if llmc_scan.looks_stale(d.file):
                score -= 30
                why += ", file looks like a test or an old copy"
            found.append(Candidate(role_name, d.file, d.name, score, why, self, documented=short in prescribed))
        found.sort(key=lambda c: (-c.score, c.file.count("/"), c.file, c.name))
        return found

    def classes(self, role_name: str, limit: int = 4, skip: str | None = None) -> list[type]:
        """The classes among the first ``limit`` candidates of a role (names matching ``skip`` left out first):
        for drivers that build the answer's own objects. A candidate that does not load is passed over; it is
        the driver's guess, not the answer's error."""
        found = [c for c in self.candidates(role_name) if not (skip and re.search(skip, c.name.lower()))]
        out = []
        for cand in found[:limit]:
            try:
                obj = cand.load()
            except (InterfaceError, SubmissionError):
                continue
            if isinstance(obj, type):
                out.append(obj)
        return out

    def role(self, role_name: str) -> Any:
        """The best candidate for a role, loaded; InterfaceError when there is none."""
        found = self.candidates(role_name)
        if not found:
            raise self.interface_error(role_name)
        return found[0].load()

    def attempts(self, role_name: str, make: Callable[[Candidate], Any], limit: int = 8) -> list[llmc_probe.Attempt]:
        """One probe attempt per candidate of a role, in rank order; InterfaceError when there is none."""
        found = self.candidates(role_name)
        if not found:
            raise self.interface_error(role_name)
        return [llmc_probe.Attempt(str(c), partial(make, c), c.documented) for c in found[:limit]]

    def drive(
        self, role_name: str, make: Callable[[Candidate], Any], probe: Callable[[Any], Any], hint: str = ""
    ) -> tuple[Any, Any]:
        """(adapter, probe result) for one role, under the probe rule (llmc_probe): candidates in rank order,
        each made into an adapter by ``make`` and run once by ``probe``."""
        return llmc_probe.first_working(
            self.attempts(role_name, make), probe, lambda tried: self.interface_error(role_name, tried, hint)
        )

    def interface_error(self, role_name: str, tried: list[str] | None = None, hint: str = "") -> InterfaceError:
        """What could not be driven: the fix (the manifest line) first, so that a one-line report keeps it,
        then the hint, then what was tried (or, when nothing was, what the folder defines)."""
        role = self.roles[role_name]
        what = role.description or " / ".join(role.prescribed) or role_name
        parts = [f"no usable {what} (role '{role_name}')"]
        parts.append(f'fix: add to llmchallenge.toml: [roles] {role_name} = "file.py:name"')
        if hint:
            parts.append(hint)
        if tried:
            parts.append("tried " + "; ".join(tried))
        else:
            defs = [f"{d.file}:{d.signature()}" for d in self.scan.definitions if d.kind != "method"][:12]
            parts.append("definitions found: " + (", ".join(defs) if defs else "none"))
        if self.scan.parse_errors:
            parts.append(
                "files that do not parse: " + ", ".join(f"{f} ({e})" for f, e in self.scan.parse_errors.items())
            )
        return InterfaceError("; ".join(parts))

    # -- loading and calling -------------------------------------------------------------------------------
    def module(self, file: str) -> Any:
        """Import one of the submission's files (once). Top-level files get their plain name so that
        ``from model import X`` inside the submission shares the same module object."""
        if file in self._modules:
            return self._modules[file]
        path = (self.root / file).resolve()
        if not path.is_file() or self.root not in path.parents:
            raise InterfaceError(f"{file}: no such file in the submission")
        stem = path.stem
        plain = "/" not in file and stem.isidentifier() and stem not in sys.modules
        name = stem if plain else "_llmsub_" + re.sub(r"\W", "_", file[:-3])
        if plain and importlib.util.find_spec(stem) is not None:
            found = importlib.util.find_spec(stem)
            if found is not None and found.origin and Path(found.origin).resolve() != path:
                name = "_llmsub_" + stem  # would shadow or be shadowed by an installed module
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InterfaceError(f"{file}: cannot be imported")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        self.on_phase("import")
        try:
            spec.loader.exec_module(mod)
        except SystemExit as exc:
            raise SubmissionExit(f"importing {file} called sys.exit({exc.code!r})") from None
        except BaseException as exc:
            sys.modules.pop(name, None)
            raise SubmissionError(f"importing {file} raised {exc_line(exc)}", self.trimmed_traceback(exc)) from None
        self.on_phase("call")
        self._modules[file] = mod
        return mod

    def load(self, file: str, name: str) -> Any:
        obj = self.module(file)
        for part in name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise InterfaceError(f"{file} has no attribute {name!r}") from None
        return obj

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call submission code; its exceptions become SubmissionError (category error, or crash on exit)."""
        try:
            return fn(*args, **kwargs)
        except SystemExit as exc:
            raise SubmissionExit(f"the submission called sys.exit({exc.code!r})") from None
        except (InterfaceError, SubmissionError, SubmissionExit):
            raise
        except BaseException as exc:
            name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
            raise SubmissionError(
                f"{name} raised {exc_line(exc)}", self.trimmed_traceback(exc), own_frames=self.own_frames(exc)
            ) from None

    def invoke(self, binding: Binding) -> Any:
        """:meth:`call` with a binding's arguments; an exception records which parameters were bound by
        position, for the probe rule."""
        try:
            return self.call(binding.fn, *binding.args, **binding.kwargs)
        except SubmissionError as exc:
            exc.by_position = exc.by_position or binding.by_position
            raise

    def own_frames(self, exc: BaseException) -> bool:
        """Whether the traceback passes through one of the submission's files."""
        root = str(self.root) + "/"
        return any((f.filename or "").startswith(root) for f in traceback.extract_tb(exc.__traceback__))

    def trimmed_traceback(self, exc: BaseException) -> str:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(self.root) in (f.filename or "")]
        lines = []
        for f in frames[-6:]:
            rel = Path(f.filename).resolve()
            shown = rel.relative_to(self.root).as_posix() if self.root in rel.parents else f.filename
            lines.append(f'  File "{shown}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}')
        lines.append(exc_line(exc))
        return "\n".join(lines)

    def ready(self) -> None:
        """Inputs are built and warm: the parent may start measuring memory now (no-op otherwise)."""
        if self._ready is not None:
            self._ready()
            self._ready = None

    # -- output normalisation ------------------------------------------------------------------------------
    @staticmethod
    def array(value: Any, what: str) -> np.ndarray:
        """A numpy array from whatever array-like the submission returned (lists, CuPy, MLX)."""
        if type(value).__module__.startswith("cupy") and hasattr(value, "get"):
            value = value.get()
        try:
            arr = np.asarray(value)
        except Exception as exc:
            raise InterfaceError(f"{what}: cannot be read as an array ({exc_line(exc)})") from None
        if arr.dtype == object:
            raise InterfaceError(f"{what}: expected a numeric array, got {type(value).__name__} of mixed objects")
        return arr
