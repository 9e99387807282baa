"""Reading a CUDA/C++ answer folder without a preprocessor: its source files, comments and strings blanked
out, and the host function definitions (with their parameters and template parameters) found in them.

The grader never runs the answer's preprocessor here: only nvcc does, when the shim is built. This reading
is enough to find a launcher and the roles of its parameters (llmc_fuse_launcher) and never executes
anything of the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_SUFFIXES = (".cu", ".cuh", ".h", ".hpp", ".cuhpp", ".inl")
QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict", "struct", "register"}


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


def matching(text: str, i: int, open_: str, close: str) -> int:
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


def split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at the ``sep`` outside any brackets (template and parameter lists)."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
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
        end = matching(code, m.end() - 1, "{", "}")
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
    close = matching(head, m.end(2) - 1, "<", ">")
    if close < 0:
        return None, False, head
    params = [Param.parse(p) for p in split_top(head[m.end(2) : close - 1]) if p]
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
        close = matching(code, m.end() - 1, "(", ")")
        if close < 0:
            continue
        after = code[close : close + 200]
        tail = re.match(r"\s*(const\b|noexcept\b|override\b|->\s*[\w:<>\s*&]+?(?=[{;])|\s)*([{;])", after)
        if not tail:
            continue
        if explicit and targs:
            insts.append((name, [a.strip() for a in split_top(targs[1:-1])]))
            continue
        if tail.group(2) != "{" or targs:
            continue  # a declaration, or a specialisation
        if re.search(r"\b__global__\b", rest) or (re.search(r"\b__device__\b", rest) and "__host__" not in rest):
            continue
        body_start = close + tail.end() - 1
        body_end = matching(code, body_start, "{", "}")
        params_text = code[m.end() : close - 1].strip()
        params = [] if params_text in ("", "void") else [Param.parse(p) for p in split_top(params_text)]
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
