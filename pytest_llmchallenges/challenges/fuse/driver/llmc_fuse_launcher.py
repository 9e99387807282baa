"""Choosing the answer's host launcher: the function ``llmchallenge.toml`` names, else the best-named host
function taking pointers whose parameters all get a role (llmc_fuse_roles), with the K values it supports.

Reading C is all this does, so no attempt can raise the answer's own error: a candidate whose parameters do
not fit is a failed probe, and when none fits the verdict is ``interface`` listing what was tried (the probe
rule of llmc_probe, for a language the toolkit's Python binder cannot read). A launcher that fits and then
does not compile is the answer's ``compile`` failure (llmc_fuse_build).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

try:
    from pytest_llmchallenges.challenges.fuse.driver import llmc_fuse_roles, llmc_fuse_source
    from pytest_llmchallenges.child.llmc_errors import InterfaceError, SubmissionError
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    import llmc_fuse_roles  # type: ignore[no-redef]
    import llmc_fuse_source  # type: ignore[no-redef]
    from llmc_errors import InterfaceError, SubmissionError  # type: ignore[no-redef]

COMMON_NAME = "launch_fused_softmax_topk"
NAME_PATTERNS = [r"^launch.*(softmax|top_?k)", r"softmax.*top_?k|top_?k.*softmax", r"top_?k", r"^launch", r"fused"]
PROBE_KS = (1, 2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 256)


@dataclass
class Launcher:
    """The answer's host launcher and how the shim calls it."""

    function: llmc_fuse_source.Function
    roles: list[str]  # one per runtime parameter; "default" = leave it to its default value
    k_template: int | None  # position of K among the template parameters, None when K is a run-time argument
    template_args: list[str]  # template arguments, with "{K}" where K goes
    ks: list[int] | None  # supported K, None = any (a run-time K with no dispatch seen)
    idx_dtype: str
    prob_dtype: str

    def describe(self) -> dict:
        """What was read from the source, as plain data for the grader's messages and the K it tests."""
        f = self.function
        return {
            "file": f.file,
            "line": f.line,
            "name": f.name,
            "signature": f.signature(),
            "roles": self.roles,
            "templated": self.k_template is not None,
            "ks": self.ks,
            "idx_dtype": self.idx_dtype,
            "prob_dtype": self.prob_dtype,
        }


def _manifest(root: Path) -> tuple[str | None, list[str] | None, list[int] | None]:
    path = root / "llmchallenge.toml"
    if not path.is_file():
        return None, None, None
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InterfaceError(f"llmchallenge.toml does not parse: {exc}") from None
    launcher = data.get("roles", {}).get("launcher")
    fuse = data.get("fuse", {})
    args = fuse.get("args")
    if isinstance(args, str):
        args = [a.strip() for a in args.split(",") if a.strip()]
    ks = fuse.get("ks")
    return launcher, args, [int(k) for k in ks] if ks else None


def launcher_or_compile_error(root: Path) -> Launcher:
    """find_launcher, except that a folder whose only CUDA sources are Markdown fails as ``compile``: it is
    graded as delivered, and as delivered it does not build."""
    try:
        return find_launcher(root)
    except InterfaceError as exc:
        files = llmc_fuse_source.source_files(root)
        md = [f.path for f in files if f.markdown]
        if md and not any(f.path.endswith(".cu") and not f.markdown for f in files):
            raise SubmissionError(
                f"{', '.join(md)}: Markdown with code inside, not CUDA source; graded as delivered, it does not build",
                str(exc),
                category="compile",
            ) from None
        raise


def find_launcher(root: Path) -> Launcher:
    """The submission's host launcher and how to call it; InterfaceError listing what was found otherwise."""
    files = [f for f in llmc_fuse_source.source_files(root) if not f.markdown]
    want, manifest_args, manifest_ks = _manifest(root)
    functions: list[llmc_fuse_source.Function] = []
    insts: list[tuple[str, list[str]]] = []
    for f in files:
        fns, ins = llmc_fuse_source.parse_functions(llmc_fuse_source.strip_comments(f.text), f.path)
        functions += fns
        insts += ins
    if want:
        file, _, name = want.partition(":")
        chosen = [f for f in functions if f.file == file and (f.name == name or f.short == name)]
        if not chosen:
            raise InterfaceError(f"llmchallenge.toml names {want}, which is not a host function definition found there")
        ranked = chosen
    else:
        ranked = sorted(
            (f for f in functions if _name_score(f) > 0 and any(p.pointer for p in f.params)),
            key=lambda f: (-_name_score(f), f.template is not None, f.file, f.line),
        )
    problems = []
    for fn in ranked[:6]:
        try:
            return _launcher_for(fn, insts, manifest_args, manifest_ks)
        except InterfaceError as exc:
            problems.append(str(exc))
    found = ", ".join(f"{f.file}:{f.line} {f.signature()}" for f in functions[:10]) or "none"
    md = [f.path for f in llmc_fuse_source.source_files(root) if f.markdown]
    raise InterfaceError(
        "no usable host launcher (a function taking the logits and output pointers); "
        + (f"tried: {' | '.join(problems)}; " if problems else f"host functions found: {found}; ")
        + (f"Markdown files with a CUDA extension: {', '.join(md)}; " if md else "")
        + f'fix: add to llmchallenge.toml: [roles] launcher = "file.cu:{COMMON_NAME}"'
    )


def _name_score(fn: llmc_fuse_source.Function) -> int:
    low = fn.short.lower()
    if low == COMMON_NAME:
        return 100
    for i, pattern in enumerate(NAME_PATTERNS):
        if re.search(pattern, low):
            return 60 - 5 * i
    return 0


def _launcher_for(
    fn: llmc_fuse_source.Function,
    insts: list[tuple[str, list[str]]],
    manifest_args: list[str] | None,
    manifest_ks: list[int] | None,
) -> Launcher:
    k_pos = None
    targs: list[str] = []
    if fn.template is not None:
        k_pos = llmc_fuse_roles.k_template_position(fn.template)
        if k_pos is None:
            raise InterfaceError(f"{fn.file}:{fn.line} {fn.signature()}: no template parameter reads as K")
        targs = llmc_fuse_roles.template_args(fn.template, k_pos)
    if manifest_args is not None:
        if len(manifest_args) > len(fn.params):
            raise InterfaceError(f"llmchallenge.toml [fuse] args lists {len(manifest_args)} roles for {fn.signature()}")
        roles = manifest_args
    else:
        roles = llmc_fuse_roles.assign_roles(fn, k_pos is not None)
    ks: list[int] | None
    if manifest_ks:
        ks = sorted(manifest_ks)
    elif k_pos is not None:
        seen = [a[k_pos] for n, a in insts if n == fn.short and len(a) > k_pos]
        ks = sorted({int(a) for a in seen if a.isdigit()}) or list(PROBE_KS)
    else:
        k_names = [p.name for p, r in zip(fn.params, roles, strict=False) if r == "K"]
        ks = llmc_fuse_roles.dispatch_ks(fn, k_names)
    by_role = dict(zip(roles, fn.params, strict=False))
    idx_t = llmc_fuse_roles.INT_TYPES.get(by_role["idx"].base) if "idx" in by_role else None
    prob_t = llmc_fuse_roles.FLOAT_TYPES.get(by_role["probs"].base) if "probs" in by_role else None
    logit_t = by_role["logits"].base if "logits" in by_role else None
    if idx_t is None or prob_t is None or logit_t != "float":
        raise InterfaceError(
            f"{fn.file}:{fn.line} {fn.signature()}: needs float logits, integer indices and float probabilities "
            f"(read: logits {logit_t}, idx {by_role.get('idx') and by_role['idx'].base}, "
            f"probs {by_role.get('probs') and by_role['probs'].base})"
        )
    return Launcher(fn, roles, k_pos, targs, ks, idx_t, prob_t)
