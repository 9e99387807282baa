"""Child side of the fuse suite: build a CUDA submission behind a generated C shim and run it through CuPy.

Real answers share no API. The shim ``#include``s the submission's source file as delivered and exports one C
function, ``llmc_fuse_launch(logits, idx, probs, B, T, V, K, stream)``, that calls whatever host launcher the
source defines: with K as a template argument when the launcher is templated on it (one ``case`` per supported
K), else at run time. The launcher, the roles of its parameters and the supported K are read from the source
with comments and strings stripped (no preprocessing); ``llmchallenge.toml`` overrides them::

    [roles]
    launcher = "kernel.cu:launch_fused_softmax_topk"
    [fuse]
    args = "logits, idx, probs, B, T, V, K, stream"   # roles of the launcher's parameters, in order
    ks = [1, 8, 64]                                    # the values of K it supports

Roles: logits, idx, probs, B, T, rows (= B*T), V, K, stream, temperature (passed 1.0), default (omitted).

The shim also renames the submission's ``main`` and counts the bytes it asks of ``cudaMalloc`` and friends
(macros defined after the CUDA headers), so that a launcher allocating a V-sized scratch buffer shows.
Compiling happens in the child (nvcc runs the submission's preprocessor); the grader keeps the built library
as bytes and hands it to each later call, which writes it into its own temp folder and loads it with ctypes.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, SubmissionError
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, InterfaceError, SubmissionError  # type: ignore[no-redef]

ROLES: dict = {}  # the submission is C++: candidates are found by parse_sources below, not by the AST scan

COMMON_NAME = "launch_fused_softmax_topk"
NAME_PATTERNS = [r"^launch.*(softmax|top_?k)", r"softmax.*top_?k|top_?k.*softmax", r"top_?k", r"^launch", r"fused"]
SOURCE_SUFFIXES = (".cu", ".cuh", ".h", ".hpp", ".cuhpp", ".inl")
PROBE_KS = (1, 2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 256)
NVCC_FLAGS = ["-std=c++17", "-O3"]
UNSUPPORTED_K = -1000
CXX_EXCEPTION = -2001
RETURNED_FALSE = -2002
BAD_RETURN = -2003
GUARD = 256
SENTINEL = 0xA5

INT_TYPES = {
    "int": "int32", "int32_t": "int32", "signed": "int32", "signed int": "int32", "unsigned": "uint32",
    "unsigned int": "uint32", "uint32_t": "uint32", "long": "int64", "long int": "int64", "long long": "int64",
    "long long int": "int64", "int64_t": "int64", "ptrdiff_t": "int64", "ssize_t": "int64", "size_t": "uint64",
    "uint64_t": "uint64", "unsigned long": "uint64", "unsigned long long": "uint64", "int16_t": "int16",
    "short": "int16",
}  # fmt: skip
FLOAT_TYPES = {"float": "float32", "double": "float64", "half": "float16", "__half": "float16"}
QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict", "struct", "register"}
NAME_ROLES = [  # (role, regex on the lower-cased parameter name) for integers
    ("K", r"^(k|topk|top_k|kk|k_top|num_k|n_k|k_val|topk_k)$"),
    ("V", r"^(v|vocab|vocab_size|vocabsize|n_vocab|num_vocab|vsize|v_size|dim|d|cols|num_cols|n_cols|"
          r"num_classes|n_classes|vocab_len|row_len|row_size|ncols)$"),
    ("B", r"^(b|batch|batch_size|batchsize|bsz|bs|n_batch|num_batch|num_batches)$"),
    ("T", r"^(t|seq|seq_len|seqlen|seq_length|sequence_length|num_tokens|n_tokens|tokens|s|len)$"),
    ("rows", r"^(rows|n_rows|num_rows|nrows|bt|b_t|batch_seq|total_rows|m|num_vectors|outer|total|count|"
             r"batch_tokens|n_seq|num_seqs|nb|n)$"),
]  # fmt: skip


# ---- reading the source ---------------------------------------------------------------------------------


def looks_like_markdown(text: str) -> bool:
    """Fenced code blocks never occur in C++, so one line starting with ``` means Markdown."""
    return re.search(r"^\s*```", text, re.M) is not None


def markdown_code(text: str) -> str:
    """The fenced code blocks of a Markdown text, joined (for diagnosis only: files are graded as delivered)."""
    blocks = re.findall(r"^\s*```[ \t]*([\w+#-]*)[^\n]*\n(.*?)^\s*```", text, re.M | re.S)
    keep = [b for lang, b in blocks if lang.lower() in ("", "cuda", "cu", "cpp", "c++", "c", "cxx", "cc", "h")]
    return "\n".join(keep)


def strip_comments(text: str) -> str:
    """Comments and string/char literals blanked out, newlines kept (line numbers stay valid)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _matching(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket closing the one at text[i], or -1."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for c in text:
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts]


@dataclass
class Param:
    text: str
    name: str
    base: str  # type without qualifiers, pointers, references: "float", "long long", "cudaStream_t"
    pointer: bool
    const: bool
    default: str | None

    @staticmethod
    def parse(text: str) -> Param:
        text = " ".join(text.split())
        decl, _, default = text.partition("=")
        decl = re.sub(r"\[\s*\]", "*", decl)
        decl = re.sub(r"__attribute__\s*\(\(.*?\)\)|alignas\s*\(.*?\)", " ", decl)
        tokens = re.findall(r"[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*|\*|&", decl)
        words = [t for t in tokens if t not in ("*", "&")]
        name = ""
        type_words = [w for w in words if w not in QUALIFIERS]
        if len(type_words) >= 2 and not decl.rstrip().endswith(("*", "&")):
            name = type_words[-1]
            type_words = type_words[:-1]
        base = " ".join(type_words)
        return Param(text, name, base, "*" in tokens, "const" in words, default.strip() or None)


@dataclass
class Function:
    name: str  # qualified for the shim: "ns::name"
    file: str
    line: int
    params: list[Param]
    template: list[Param] | None  # template parameters, None when not a template
    body: str
    instantiations: list[list[str]] = field(default_factory=list)  # explicit template arguments seen

    @property
    def short(self) -> str:
        return self.name.rsplit("::", 1)[-1]

    def signature(self) -> str:
        t = f"template<{', '.join(p.text for p in self.template)}> " if self.template is not None else ""
        return f"{t}{self.name}({', '.join(p.text for p in self.params)})"


_CALLABLE = re.compile(r"\b([A-Za-z_]\w*)\s*(<[^;{}()]*?>)?\s*\(")
_NOT_TYPES = {"return", "if", "while", "for", "switch", "sizeof", "else", "do", "case", "new", "delete", "throw",
              "decltype", "alignof", "static_assert", "defined", "typedef", "using", "goto"}  # fmt: skip


def _namespaces(code: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in re.finditer(r"\bnamespace\s+([A-Za-z_]\w*)?\s*\{", code):
        end = _matching(code, m.end() - 1, "{", "}")
        if end > 0 and m.group(1):
            spans.append((m.start(), end, m.group(1)))
    return spans


def _statement_head(code: str, pos: int) -> str:
    """The text of the current declaration before ``pos``: back to the last ; { } or preprocessor line."""
    start = max(code.rfind(";", 0, pos), code.rfind("{", 0, pos), code.rfind("}", 0, pos))
    head = code[start + 1 : pos]
    lines = [ln for ln in head.split("\n") if not ln.lstrip().startswith("#")]
    return " ".join(" ".join(lines).split())


def _template_header(head: str) -> tuple[list[Param] | None, bool, str]:
    """(template parameters, explicit instantiation?, head without the template part)."""
    m = re.match(r"^(extern\s+)?template\b\s*(<)?", head)
    if not m:
        return None, False, head
    if m.group(2) is None:
        return None, True, head[m.end() :]
    close = _matching(head, m.end(2) - 1, "<", ">")
    if close < 0:
        return None, False, head
    params = [Param.parse(p) for p in _split_top(head[m.end(2) : close - 1]) if p]
    return params, False, head[close:]


def parse_functions(code: str, file: str) -> tuple[list[Function], list[tuple[str, list[str]]]]:
    """Host function definitions, and explicit instantiations (name, template args), of comment-free code."""
    found: list[Function] = []
    insts: list[tuple[str, list[str]]] = []
    spaces = _namespaces(code)
    for m in _CALLABLE.finditer(code):
        name, targs = m.group(1), m.group(2)
        if name in _NOT_TYPES or name == "main":
            continue
        head = _statement_head(code, m.start())
        template, explicit, rest = _template_header(head)
        if not rest or re.search(r"[=(),]|\breturn\b|<<", rest) or rest.split()[-1] in _NOT_TYPES:
            continue
        if not re.search(r"[A-Za-z_]\w*\s*[*&]*\s*$", rest):  # a return type must precede the name
            continue
        close = _matching(code, m.end() - 1, "(", ")")
        if close < 0:
            continue
        after = code[close : close + 200]
        tail = re.match(r"\s*(const\b|noexcept\b|override\b|->\s*[\w:<>\s*&]+?(?=[{;])|\s)*([{;])", after)
        if not tail:
            continue
        if explicit and targs:
            insts.append((name, [a.strip() for a in _split_top(targs[1:-1])]))
            continue
        if tail.group(2) != "{" or targs:
            continue  # a declaration, or a specialisation
        if re.search(r"\b__global__\b", rest) or (re.search(r"\b__device__\b", rest) and "__host__" not in rest):
            continue
        body_start = close + tail.end() - 1
        body_end = _matching(code, body_start, "{", "}")
        params_text = code[m.end() : close - 1].strip()
        params = [] if params_text in ("", "void") else [Param.parse(p) for p in _split_top(params_text)]
        ns = [n for s, e, n in spaces if s < m.start() < e]
        qualified = "::".join([*ns, name])
        line = code.count("\n", 0, m.start()) + 1
        found.append(Function(qualified, file, line, params, template, code[body_start:body_end]))
    return found, insts


@dataclass
class SourceFile:
    path: str  # relative to the challenge folder
    text: str
    markdown: bool


def source_files(root: Path) -> list[SourceFile]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in SOURCE_SUFFIXES or not path.is_file() or len(rel.parts) > 4:
            continue
        if any(p.startswith(".") or p in ("build", "__pycache__") for p in rel.parts[:-1]):
            continue
        text = path.read_text(errors="replace")
        out.append(SourceFile(rel.as_posix(), text, looks_like_markdown(text)))
    return out


# ---- the launcher and its calling convention --------------------------------------------------------------


@dataclass
class Launcher:
    function: Function
    roles: list[str]  # one per runtime parameter; "default" = leave it to its default value
    k_template: int | None  # position of K among the template parameters, None when K is a run-time argument
    template_args: list[str]  # template arguments, with "{K}" where K goes
    ks: list[int] | None  # supported K, None = any (a run-time K with no dispatch seen)
    idx_dtype: str
    prob_dtype: str

    def describe(self) -> dict:
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


def _int_like(p: Param) -> bool:
    return not p.pointer and p.base in INT_TYPES


def _name_role(name: str) -> str | None:
    low = name.lower().lstrip("_")
    for role, pattern in NAME_ROLES:
        if re.match(pattern, low):
            return role
    return None


def _pointer_roles(params: list[Param]) -> dict[int, str]:
    roles: dict[int, str] = {}
    floats = [i for i, p in enumerate(params) if p.pointer and p.base in FLOAT_TYPES]
    ints = [i for i, p in enumerate(params) if p.pointer and p.base in INT_TYPES]
    for i in floats:
        low = params[i].name.lower()
        if re.search(r"prob|^p$|^p_|_p$|out_?val|val(ue)?s?_?out|topk_?v|top_?v|score_out|weights", low):
            roles[i] = "probs"
        elif re.search(r"logit|input|^in$|^in_|^x$|^src|^d_in|scores?$", low):
            roles[i] = "logits"
    rest = [i for i in floats if i not in roles]
    if "logits" not in roles.values() and rest:
        const = [i for i in rest if params[i].const]
        pick = const[0] if const else rest[0]
        roles[pick] = "logits"
        rest.remove(pick)
    if "probs" not in roles.values() and rest:
        roles[rest[0]] = "probs"
    if ints:
        named = [i for i in ints if re.search(r"idx|ind|id|tok|arg", params[i].name.lower())]
        roles[(named or ints)[0]] = "idx"
    return roles


def assign_roles(fn: Function, k_in_template: bool) -> list[str]:
    """A role for each parameter of ``fn``; InterfaceError naming the first it cannot place."""
    params = fn.params
    roles: list[str | None] = [None] * len(params)
    for i, r in _pointer_roles(params).items():
        roles[i] = r
    for i, p in enumerate(params):
        if roles[i] is not None:
            continue
        if p.base in ("cudaStream_t", "CUstream", "cudaStream"):
            roles[i] = "stream"
        elif _int_like(p):
            r = _name_role(p.name) if p.name else None
            if r is not None and r not in roles:
                roles[i] = r
        elif p.base in ("float", "double") and re.search(r"temp", p.name.lower()):
            roles[i] = "temperature"
    ints_left = [i for i, p in enumerate(params) if roles[i] is None and _int_like(p) and p.default is None]
    have = {r for r in roles if r}
    order = [r for r in ("B", "T", "rows", "V", "K") if r not in have]
    if "rows" in have:
        order = [r for r in order if r not in ("B", "T")]
    if "B" in have or "T" in have:
        order = [r for r in order if r != "rows"]
    if k_in_template and "K" in order and len(ints_left) < len(order):
        order.remove("K")
    if len(ints_left) == len(order) - 1 and "rows" in order and ("B" in order or "T" in order):
        order = [r for r in order if r not in ("B", "T")]  # (rows, V[, K])
    elif "rows" in order and len(ints_left) >= len(order) - 1:
        order.remove("rows")
    for i, r in zip(ints_left, order, strict=False):
        roles[i] = r
    for i, p in enumerate(params):
        if roles[i] is None and p.default is not None:
            roles[i] = "default"
    missing = [f"'{p.text}'" for i, p in enumerate(params) if roles[i] is None]
    if missing:
        raise InterfaceError(
            f"{fn.file}:{fn.line} {fn.signature()}: cannot tell what to pass for {', '.join(missing)}; "
            'fix: add to llmchallenge.toml: [fuse] args = "logits, idx, probs, B, T, V, K, stream"'
        )
    got = [r for r in roles if r]
    need = {"logits", "idx", "probs", "V"}
    if not need <= set(got) or not ({"B", "T"} <= set(got) or "rows" in got) or (not k_in_template and "K" not in got):
        raise InterfaceError(
            f"{fn.file}:{fn.line} {fn.signature()}: read as ({', '.join(got)}), which lacks "
            f"{', '.join(sorted(need - set(got))) or 'the shape or K'}; "
            'fix: add to llmchallenge.toml: [fuse] args = "logits, idx, probs, B, T, V, K, stream"'
        )
    return [r for r in roles if r]


def _k_template_position(template: list[Param]) -> int | None:
    ints = [i for i, p in enumerate(template) if p.base in INT_TYPES or p.base in ("auto", "unsigned")]
    named = [i for i in ints if _name_role(template[i].name) == "K"]
    if named:
        return named[0]
    free = [i for i in ints if template[i].default is None]
    return free[0] if len(free) == 1 else None


def _template_args(template: list[Param], k_pos: int) -> list[str]:
    args = []
    last_needed = max(k_pos, *[i for i, p in enumerate(template) if p.default is None]) if template else -1
    for i, p in enumerate(template[: last_needed + 1]):
        if i == k_pos:
            args.append("{K}")
        elif p.default is not None:
            args.append(p.default)
        elif p.base in ("typename", "class"):
            args.append("float")
        else:
            raise InterfaceError(f"template parameter '{p.text}' of the launcher has no value the grader can choose")
    return args


def _dispatch_ks(fn: Function, k_names: list[str]) -> list[int] | None:
    """Values of K a run-time launcher dispatches on: case labels of a switch on K, or K == N tests."""
    body = fn.body
    ks: set[int] = set()
    for name in k_names:
        for m in re.finditer(r"\bswitch\s*\(\s*" + re.escape(name) + r"\s*\)", body):
            end = _matching(body, body.find("{", m.end()), "{", "}")
            ks.update(int(c) for c in re.findall(r"\bcase\s+(\d+)\s*:", body[m.end() : end]))
        ks.update(int(c) for c in re.findall(r"\b" + re.escape(name) + r"\s*==\s*(\d+)\b", body))
        ks.update(int(c) for c in re.findall(r"\b(\d+)\s*==\s*" + re.escape(name) + r"\b", body))
    return sorted(k for k in ks if 0 < k <= 4096) or None


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
        files = source_files(root)
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
    files = [f for f in source_files(root) if not f.markdown]
    want, manifest_args, manifest_ks = _manifest(root)
    functions: list[Function] = []
    insts: list[tuple[str, list[str]]] = []
    for f in files:
        fns, ins = parse_functions(strip_comments(f.text), f.path)
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
    md = [f.path for f in source_files(root) if f.markdown]
    raise InterfaceError(
        "no usable host launcher (a function taking the logits and output pointers); "
        + (f"tried: {' | '.join(problems)}; " if problems else f"host functions found: {found}; ")
        + (f"Markdown files with a CUDA extension: {', '.join(md)}; " if md else "")
        + f'fix: add to llmchallenge.toml: [roles] launcher = "file.cu:{COMMON_NAME}"'
    )


def _name_score(fn: Function) -> int:
    low = fn.short.lower()
    if low == COMMON_NAME:
        return 100
    for i, pattern in enumerate(NAME_PATTERNS):
        if re.search(pattern, low):
            return 60 - 5 * i
    return 0


def _launcher_for(
    fn: Function, insts: list[tuple[str, list[str]]], manifest_args: list[str] | None, manifest_ks: list[int] | None
) -> Launcher:
    k_pos = None
    template_args: list[str] = []
    if fn.template is not None:
        k_pos = _k_template_position(fn.template)
        if k_pos is None:
            raise InterfaceError(f"{fn.file}:{fn.line} {fn.signature()}: no template parameter reads as K")
        template_args = _template_args(fn.template, k_pos)
    if manifest_args is not None:
        if len(manifest_args) > len(fn.params):
            raise InterfaceError(f"llmchallenge.toml [fuse] args lists {len(manifest_args)} roles for {fn.signature()}")
        roles = manifest_args
    else:
        roles = assign_roles(fn, k_pos is not None)
    ks: list[int] | None
    if manifest_ks:
        ks = sorted(manifest_ks)
    elif k_pos is not None:
        seen = [a[k_pos] for n, a in insts if n == fn.short and len(a) > k_pos]
        ks = sorted({int(a) for a in seen if a.isdigit()}) or list(PROBE_KS)
    else:
        k_names = [p.name for p, r in zip(fn.params, roles, strict=False) if r == "K"]
        ks = _dispatch_ks(fn, k_names)
    by_role = dict(zip(roles, fn.params, strict=False))
    idx_t = INT_TYPES.get(by_role["idx"].base) if "idx" in by_role else None
    prob_t = FLOAT_TYPES.get(by_role["probs"].base) if "probs" in by_role else None
    logit_t = by_role["logits"].base if "logits" in by_role else None
    if idx_t is None or prob_t is None or logit_t != "float":
        raise InterfaceError(
            f"{fn.file}:{fn.line} {fn.signature()}: needs float logits, integer indices and float probabilities "
            f"(read: logits {logit_t}, idx {by_role.get('idx') and by_role['idx'].base}, "
            f"probs {by_role.get('probs') and by_role['probs'].base})"
        )
    return Launcher(fn, roles, k_pos, template_args, ks, idx_t, prob_t)


# ---- the shim -----------------------------------------------------------------------------------------------

_PRELUDE = """// generated by the pytest-llmchallenges fuse driver: includes the submission as delivered
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <type_traits>
#include <vector>

static size_t llmc_alloc_bytes_ = 0;
static size_t llmc_alloc_calls_ = 0;
"""
_TRACKERS = """
template <class P> static cudaError_t llmc_cudaMalloc(P** p, size_t n) {
  llmc_alloc_bytes_ += n; ++llmc_alloc_calls_; return ::cudaMalloc(reinterpret_cast<void**>(p), n);
}
template <class P> static cudaError_t llmc_cudaMallocAsync(P** p, size_t n, cudaStream_t s) {
  llmc_alloc_bytes_ += n; ++llmc_alloc_calls_; return ::cudaMallocAsync(reinterpret_cast<void**>(p), n, s);
}
template <class P> static cudaError_t llmc_cudaMallocManaged(P** p, size_t n, unsigned f = cudaMemAttachGlobal) {
  llmc_alloc_bytes_ += n; ++llmc_alloc_calls_; return ::cudaMallocManaged(reinterpret_cast<void**>(p), n, f);
}
template <class P> static cudaError_t llmc_cudaMallocPitch(P** p, size_t* pitch, size_t w, size_t h) {
  llmc_alloc_bytes_ += w * h; ++llmc_alloc_calls_;
  return ::cudaMallocPitch(reinterpret_cast<void**>(p), pitch, w, h);
}
#define cudaMalloc llmc_cudaMalloc
#define cudaMallocAsync llmc_cudaMallocAsync
#define cudaMallocManaged llmc_cudaMallocManaged
#define cudaMallocPitch llmc_cudaMallocPitch
"""
_UNTRACK = "#undef cudaMalloc\n#undef cudaMallocAsync\n#undef cudaMallocManaged\n#undef cudaMallocPitch\n"
_EXPORTS = """
static char llmc_message_[512];

template <class F> static int llmc_status(F&& f) {
  using R = decltype(f());
  if constexpr (std::is_void_v<R>) {
    f();
    return (int)cudaGetLastError();
  } else if constexpr (std::is_same_v<R, bool>) {
    const bool ok = f();
    const int e = (int)cudaGetLastError();
    return ok ? e : (e ? e : %(false)d);
  } else if constexpr (std::is_convertible_v<R, long long>) {
    const long long r = (long long)f();
    const int e = (int)cudaGetLastError();
    if (r == 0) return e;
    return (r > INT_MIN && r < INT_MAX) ? (int)r : %(bad)d;
  } else {
    (void)f();
    return (int)cudaGetLastError();
  }
}

extern "C" int llmc_fuse_launch(const void* logits, void* idx, void* probs, int B, int T, int V, int K, void* stream) {
  (void)logits; (void)idx; (void)probs; (void)B; (void)T; (void)V; (void)K; (void)stream;
  try {
%(body)s
  } catch (const std::exception& e) {
    std::snprintf(llmc_message_, sizeof llmc_message_, "%%s", e.what());
    return %(exc)d;
  } catch (...) {
    std::snprintf(llmc_message_, sizeof llmc_message_, "a C++ exception that is not a std::exception");
    return %(exc)d;
  }
}
extern "C" int llmc_fuse_sync(void) { return (int)cudaDeviceSynchronize(); }
extern "C" const char* llmc_error_name(int e) { return cudaGetErrorName((cudaError_t)e); }
extern "C" const char* llmc_message(void) { return llmc_message_; }
extern "C" unsigned long long llmc_alloc_bytes(void) { return llmc_alloc_bytes_; }
extern "C" unsigned long long llmc_alloc_calls(void) { return llmc_alloc_calls_; }
"""
_MAIN = """
// Standalone check for compute-sanitizer: exactly sized buffers, distinct logits, one launch.
int main() {
  const int B = %(B)d, T = %(T)d, V = %(V)d, K = %(K)d;
  const size_t n = (size_t)B * T * V;
  std::vector<float> h(n);
  unsigned s = 12345u;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    h[i] = (float)(s >> 8) * (8.0f / 16777216.0f) - 4.0f;
  }
  float* logits = nullptr; void* idx = nullptr; void* probs = nullptr;
  if (::cudaMalloc((void**)&logits, n * sizeof(float)) || ::cudaMalloc(&idx, (size_t)B * T * K * %(idx_size)d) ||
      ::cudaMalloc(&probs, (size_t)B * T * K * %(prob_size)d)) { std::printf("allocation failed\\n"); return 2; }
  cudaMemcpy(logits, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  const int st = llmc_fuse_launch(logits, idx, probs, B, T, V, K, nullptr);
  const int sy = llmc_fuse_sync();
  std::printf("launch status %%d, sync status %%d\\n", st, sy);
  cudaFree(logits); cudaFree(idx); cudaFree(probs);
  return (st != 0 || sy != 0) ? 4 : 0;
}
"""


def _argument(role: str, p: Param) -> str | None:
    star = "*" if p.pointer else ""
    return {
        "logits": f"({p.base}{star})logits",
        "idx": f"({p.base}{star})idx",
        "probs": f"({p.base}{star})probs",
        "B": "B",
        "T": "T",
        "rows": "B * T",
        "V": "V",
        "K": "K",
        "stream": "(cudaStream_t)stream",
        "temperature": "1.0f",
    }.get(role)


def shim_source(launcher: Launcher, include: Path, track: bool, ks: list[int] | None, main: dict | None = None) -> str:
    fn = launcher.function
    args = []
    for role, p in zip(launcher.roles, fn.params, strict=False):
        a = _argument(role, p)
        if a is None:  # "default": this and the rest keep their defaults
            break
        args.append(a)
    call = ", ".join(args)
    if launcher.k_template is None:
        body = f"    return llmc_status([&]() -> decltype(auto) {{ return {fn.name}({call}); }});"
    else:
        lines = ["    switch (K) {"]
        for k in ks or []:
            targs = ", ".join(a.replace("{K}", str(k)) for a in launcher.template_args)
            call_k = f"{fn.name}<{targs}>({call})"
            lines.append(f"      case {k}: return llmc_status([&]() -> decltype(auto) {{ return {call_k}; }});")
        lines.append(f"      default: return {UNSUPPORTED_K};")
        lines.append("    }")
        body = "\n".join(lines)
    text = _PRELUDE + (_TRACKERS if track else "")
    text += f'#define main llmc_submission_main\n#include "{include.as_posix()}"\n#undef main\n'
    text += _UNTRACK if track else ""
    text += _EXPORTS % {"body": body, "false": RETURNED_FALSE, "bad": BAD_RETURN, "exc": CXX_EXCEPTION}
    if main is not None:
        size = {"int16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8}[launcher.idx_dtype]
        psize = {"float16": 2, "float32": 4, "float64": 8}[launcher.prob_dtype]
        text += _MAIN % {**main, "idx_size": size, "prob_size": psize}
    return text


# ---- compiling ------------------------------------------------------------------------------------------------


def nvcc_path() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and Path(home, "bin", "nvcc").is_file():
            return str(Path(home, "bin", "nvcc"))
    return None


def device_arch() -> str:
    """sm_XY of CUDA device 0 (needs CuPy and a device)."""
    import cupy

    return f"sm_{cupy.cuda.Device(0).compute_capability}"


def first_errors(log: str, limit: int = 12) -> str:
    """The compiler's first error lines (with their file:line), else the head of the log."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.search(r"\berror\b|fatal", ln, re.I)]
    return "\n".join((errs or lines)[:limit])


def _nvcc(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    nvcc = nvcc_path()
    if nvcc is None:
        raise SubmissionError("nvcc (the CUDA compiler) is not installed here", category="compile")
    try:
        proc = subprocess.run(
            [nvcc, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, f"nvcc did not finish within {timeout:g} s"
    return proc.returncode, (proc.stdout + proc.stderr)


def compile_check(sub: Answer, arch: str = "sm_90") -> dict:
    """Compile every .cu file of the folder unmodified (``nvcc -c``); report the first errors of each."""
    if nvcc_path() is None:
        return {"missing": "nvcc (the CUDA compiler) is not installed: NVRTC cannot compile host launchers"}
    root = Path(sub.root)
    files = source_files(root)
    units = [f for f in files if f.path.endswith(".cu")]
    out: dict[str, Any] = {"arch": arch, "units": [], "headers": [f.path for f in files if not f.path.endswith(".cu")]}
    md_elsewhere = [p.relative_to(root).as_posix() for p in root.rglob("*.md") if re.search(
        r"^\s*```\s*(cuda|cu|cpp|c\+\+)\b", p.read_text(errors="replace"), re.M)]  # fmt: skip
    out["markdown_with_cuda"] = md_elsewhere
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    for n, f in enumerate(units):
        rc, log = _nvcc([*NVCC_FLAGS, f"-arch={arch}", "-c", f.path, "-o", str(scratch / f"unit{n}.o")], root)
        entry: dict[str, Any] = {"file": f.path, "ok": rc == 0, "errors": "" if rc == 0 else first_errors(log)}
        entry["warnings"] = len(re.findall(r"\bwarning\b", log))
        entry["markdown"] = f.markdown
        if f.markdown and rc != 0:
            code = markdown_code(f.text)
            probe = scratch / f"extracted{n}.cu"
            probe.write_text(code)
            rc2, log2 = _nvcc([*NVCC_FLAGS, f"-arch={arch}", "-c", str(probe), "-o", str(scratch / f"x{n}.o")], root)
            entry["extracted_ok"] = rc2 == 0
            entry["extracted_errors"] = "" if rc2 == 0 else first_errors(log2, 6)
        out["units"].append(entry)
    return out


def describe(sub: Answer) -> dict:
    """What the driver reads from the source: the launcher, its roles, the supported K (no compiling)."""
    return find_launcher(Path(sub.root)).describe()


def _build(root: Path, launcher: Launcher, arch: str, output: Path, main: dict | None = None) -> tuple[bool, list, str]:
    """Compile the shim: with the allocation counters first, without them if only those break the build; for
    a template with no explicit instantiation, retry with K <= 64 (its own static_asserts may refuse more).
    Returns (allocations tracked, K values compiled, compiler log)."""
    include = (root / launcher.function.file).resolve()
    kind = ["-o", str(output)] + ([] if main else ["-shared", "-Xcompiler", "-fPIC", "-Xlinker", "-z,defs"])
    extra = ["-lineinfo"] if main else []
    attempts = [(True, launcher.ks), (False, launcher.ks)]
    if launcher.k_template is not None and launcher.ks == list(PROBE_KS):
        small = [k for k in PROBE_KS if k <= 64]
        attempts += [(True, small), (False, small)]
    log = ""
    for track, ks in attempts:
        shim = output.with_name(output.name + ".shim.cu")
        shim.write_text(shim_source(launcher, include, track, ks, main))
        rc, log = _nvcc([*NVCC_FLAGS, *extra, f"-arch={arch}", f"-I{root}", str(shim), *kind], root)
        if rc == 0:
            return track, ks, log
    raise SubmissionError(
        f"{launcher.function.file} does not build behind the grader's shim (launcher {launcher.function.signature()})",
        first_errors(log),
        category="compile",
    )


def build(sub: Answer, arch: str | None = None) -> dict:
    """Build the shared library; returns its bytes (the grader keeps them) and what was read from the source."""
    root = Path(sub.root)
    launcher = launcher_or_compile_error(root)
    arch = arch or device_arch()
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "libllmc_fuse.so"
    tracked, ks, log = _build(root, launcher, arch, out)
    return {
        "so": np.frombuffer(out.read_bytes(), dtype=np.uint8),
        "launcher": launcher.describe() | {"ks": ks},
        "alloc_tracked": tracked,
        "arch": arch,
        "warnings": first_errors(log, 6) if "warning" in log else "",
    }


# ---- running ------------------------------------------------------------------------------------------------


def _load(built: dict) -> ctypes.CDLL:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "libllmc_fuse_run.so"
    path.write_bytes(np.asarray(built["so"], dtype=np.uint8).tobytes())
    lib = ctypes.CDLL(str(path))
    lib.llmc_fuse_launch.restype = ctypes.c_int
    lib.llmc_fuse_launch.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_void_p]
    lib.llmc_fuse_sync.restype = ctypes.c_int
    lib.llmc_error_name.restype = ctypes.c_char_p
    lib.llmc_error_name.argtypes = [ctypes.c_int]
    lib.llmc_message.restype = ctypes.c_char_p
    lib.llmc_alloc_bytes.restype = ctypes.c_ulonglong
    lib.llmc_alloc_calls.restype = ctypes.c_ulonglong
    return lib


def status_text(lib: ctypes.CDLL, code: int) -> str:
    if code == UNSUPPORTED_K:
        return "this K is not among the launcher's instantiations"
    if code == CXX_EXCEPTION:
        return "the launcher threw: " + lib.llmc_message().decode(errors="replace")
    if code == RETURNED_FALSE:
        return "the launcher returned false"
    if code == BAD_RETURN:
        return "the launcher returned a value that is not a status"
    name = lib.llmc_error_name(code)
    return f"{code} ({name.decode() if name else 'not a CUDA error code'})"


def _launch_one(lib: ctypes.CDLL, logits: np.ndarray, k: int, idx_dtype: str, prob_dtype: str) -> dict:
    import cupy as cp

    b, t, v = logits.shape
    rows = b * t
    idx_bytes = rows * k * np.dtype(idx_dtype).itemsize
    prob_bytes = rows * k * np.dtype(prob_dtype).itemsize
    off_idx = GUARD
    off_probs = -(-(off_idx + idx_bytes + GUARD) // GUARD) * GUARD
    total = -(-(off_probs + prob_bytes + GUARD) // GUARD) * GUARD
    # Host-to-device copies only: no CuPy kernel, so nothing is compiled at run time in the child.
    d_logits = cp.asarray(logits)
    arena = cp.asarray(np.full(total, SENTINEL, dtype=np.uint8))  # guards around both outputs, outputs poisoned
    cp.cuda.Device().synchronize()
    alloc_before = lib.llmc_alloc_bytes()
    base = arena.data.ptr
    status = lib.llmc_fuse_launch(d_logits.data.ptr, base + off_idx, base + off_probs, b, t, v, k, None)
    sync = lib.llmc_fuse_sync()
    out: dict[str, Any] = {"K": k, "status": status, "status_text": status_text(lib, status) if status else ""}
    out["alloc_bytes"] = int(lib.llmc_alloc_bytes() - alloc_before)
    if sync != 0:  # a fault: the context is gone, nothing more can be read
        out.update(fault=True, sync=sync, sync_text=status_text(lib, sync))
        return out
    host = arena.get()
    guard = np.ones(total, dtype=bool)
    guard[off_idx : off_idx + idx_bytes] = False
    guard[off_probs : off_probs + prob_bytes] = False
    bad = np.flatnonzero(guard & (host != SENTINEL))
    regions = []
    for name, lo, hi in (("before idx", 0, off_idx), ("after idx", off_idx + idx_bytes, off_probs),
                         ("after probs", off_probs + prob_bytes, total)):  # fmt: skip
        hit = bad[(bad >= lo) & (bad < hi)]
        if hit.size:
            regions.append(f"{hit.size} guard bytes {name} (offsets {int(hit[0]) - lo}..{int(hit[-1]) - lo})")
    raw_idx = host[off_idx : off_idx + idx_bytes].reshape(rows * k, -1)
    raw_probs = host[off_probs : off_probs + prob_bytes].reshape(rows * k, -1)
    out["unwritten"] = [int((raw_idx == SENTINEL).all(axis=1).sum()), int((raw_probs == SENTINEL).all(axis=1).sum())]
    idx = host[off_idx : off_idx + idx_bytes].view(idx_dtype).reshape(b, t, k).astype(np.int64)
    probs = host[off_probs : off_probs + prob_bytes].view(prob_dtype).reshape(b, t, k).astype(np.float64)
    out.update(fault=False, idx=idx, probs=probs, guard_damage=regions)
    out["logits_intact"] = bool((d_logits.get() == logits).all())
    return out


def run(sub: Answer, built: dict, cases: list[dict], stop_at_first_success: bool = False) -> list[dict]:
    """Launch the built library on each case {"logits": float32 [B, T, V], "K": int}; stops after a fault."""
    import cupy  # noqa: F401  (fails here, as an interface error, where CuPy is missing)

    lib = _load(built)
    desc = built["launcher"]
    results = []
    for case in cases:
        logits = np.ascontiguousarray(case["logits"], dtype=np.float32)
        res = _launch_one(lib, logits, int(case["K"]), desc["idx_dtype"], desc["prob_dtype"])
        results.append(res)
        if res.get("fault") or (stop_at_first_success and res["status"] == 0):
            break
    return results


# ---- compute-sanitizer ----------------------------------------------------------------------------------


def sanitizer_path() -> str | None:
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    nvcc = nvcc_path()
    for cand in ([Path(nvcc).parent / "compute-sanitizer"] if nvcc else []) + [
        Path("/usr/local/cuda/bin/compute-sanitizer"),
        Path("/usr/local/cuda/compute-sanitizer/compute-sanitizer"),
    ]:
        if cand.is_file():
            return str(cand)
    return None


def sanitize(sub: Answer, shape: list[int], k: int, tools: list[str], arch: str | None = None) -> dict:
    """Build a standalone program around the launcher and run it under compute-sanitizer's tools."""
    tool = sanitizer_path()
    if tool is None:
        return {"missing": "compute-sanitizer is not installed"}
    root = Path(sub.root)
    launcher = launcher_or_compile_error(root)
    arch = arch or device_arch()
    b, t, v = shape
    exe = Path(os.environ.get("TMPDIR", "/tmp")) / "llmc_fuse_check"
    _build(root, launcher, arch, exe, main={"B": b, "T": t, "V": v, "K": k})
    report: dict[str, Any] = {}
    for name in tools:
        cmd = [tool, "--tool", name, "--error-exitcode", "97", "--print-limit", "20", str(exe)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
            text = proc.stdout + proc.stderr
            report[name] = {"rc": proc.returncode, "tail": text[-3000:]}
        except subprocess.TimeoutExpired:
            report[name] = {"rc": 124, "tail": f"{name} did not finish within 240 s"}
    return report
