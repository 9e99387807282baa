"""Mechanical rewrite of CUDA source into C++ that the emulator's fake ``cuda_runtime.h`` can compile.

Two constructs are not C++ and cannot be handled by macros, so they are rewritten here, keeping every line of
the original where it was (so compiler errors and the emulator's barrier sites name the original lines):

* ``kernel<<<grid, block[, smem[, stream]]>>>(args)`` becomes ``::emu::launch(kernel, grid, block, smem, stream,
  args)``; the kernel expression may carry template arguments (``k<4, float><<<...>>>``).
* ``__shared__ T name[dims];`` becomes a reference to per-block storage that the emulator allocates (exactly
  sized, so AddressSanitizer sees overruns) and fills with a poison byte at every block start, so that a read
  of shared memory no thread of the block wrote shows up as garbage. ``extern __shared__ T name[];`` becomes a
  pointer to the launch's dynamic shared buffer of exactly ``smem`` bytes. Declarations at namespace scope
  become an accessor function plus a ``#define`` of the name.
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{", ")]}"


class TransformError(ValueError):
    """The source uses a form of launch or shared declaration the transform does not understand."""


def blank_comments_and_strings(src: str) -> str:
    """Same length as ``src``, with comments and the insides of string/char literals replaced by spaces
    (newlines kept), so that searches for syntax do not match text inside them."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
            continue
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def _match_forward(text: str, start: int) -> int:
    """Index just past the bracket closing the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in _OPEN:
            depth += 1
        elif text[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
    raise TransformError(f"unbalanced bracket at offset {start}")


def _split_top_level(text: str) -> list[str]:
    parts, depth, last = [], 0, 0
    for i, c in enumerate(text):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def _kernel_start(text: str, end: int) -> int:
    """Start of the kernel expression ending at ``end``: an optionally qualified name, optionally followed by
    template arguments."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if i > 0 and text[i - 1] == ">":
        depth = 0
        while i > 0:
            i -= 1
            if text[i] in ">)]":
                depth += 1
            elif text[i] in "<([":
                depth -= 1
                if depth == 0:
                    break
        while i > 0 and text[i - 1].isspace():
            i -= 1
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    if i == end:
        raise TransformError(f"no kernel name before <<< at offset {end}")
    return i


def rewrite_launches(src: str) -> str:
    """Replace every ``kernel<<<config>>>(args)`` by a call of ``::emu::launch``."""
    blank = blank_comments_and_strings(src)
    edits = []
    for m in re.finditer(r"<<<", blank):
        depth, i = 0, m.end()
        while i < len(blank):
            if blank.startswith(">>>", i) and depth == 0:
                break
            depth += blank[i] in _OPEN
            depth -= blank[i] in _CLOSE
            i += 1
        else:
            raise TransformError(f"<<< without >>> at offset {m.start()}")
        cfg_end = i
        j = cfg_end + 3
        while j < len(blank) and blank[j].isspace():
            j += 1
        if j >= len(blank) or blank[j] != "(":
            raise TransformError(f"no argument list after >>> at offset {cfg_end}")
        args_end = _match_forward(blank, j)
        start = _kernel_start(blank, m.start())
        config = _split_top_level(src[m.end() : cfg_end])
        if not 2 <= len(config) <= 4:
            raise TransformError(f"launch configuration needs 2 to 4 values: <<<{src[m.end() : cfg_end]}>>>")
        config += ["0", "nullptr"][len(config) - 2 :]
        args = src[j + 1 : args_end - 1]
        call = f"::emu::launch({src[start : m.start()].strip()}, {', '.join(c.strip() for c in config)}"
        call += f", {args})" if args.strip() else ")"
        gap = src.count("\n", start, args_end) - call.count("\n")  # keep the following lines in place
        edits.append((start, args_end, call + "\n" * max(gap, 0)))
    for start, end, new in reversed(edits):
        src = src[:start] + new + src[end:]
    return src


_DECL = re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\]\s*)*)$", re.S)
_ALIGN = re.compile(r"\b(?:__align__|alignas)\s*\(\s*(?P<n>[^()]*)\)")
_SCOPE_HEAD = re.compile(r"\b(?:namespace|struct|class|union|enum)\b|^\s*extern\s*\"[^\"]*\"\s*$")


def _shared_sites(blank: str) -> list[tuple[int, bool]]:
    """(offset of each ``__shared__``, whether it is inside code: a function body rather than a namespace,
    ``extern "C"`` block or class)."""
    sites: list[tuple[int, bool]] = []
    stack: list[bool] = []
    head = 0
    for m in re.finditer(r"[{};]|\b__shared__\b", blank):
        tok = m.group()
        if tok == "{":
            text = blank[head : m.start()]
            stack.append(not (_SCOPE_HEAD.search(text) and "(" not in text))
        elif tok == "}":
            if stack:
                stack.pop()
        elif tok == "__shared__":
            sites.append((m.start(), any(stack)))
            continue
        head = m.end()
    return sites


def _line_of(src: str, offset: int) -> int:
    return src.count("\n", 0, offset) + 1


def rewrite_shared(src: str, filename: str) -> str:
    """Replace every ``[extern] [static] __shared__ T name[dims];`` by emulator storage (see the module doc)."""
    blank = blank_comments_and_strings(src)
    edits = []
    for pos, in_code in _shared_sites(blank):
        start = pos
        before = re.search(r"(?:\b(?:extern|static)\s+)*$", blank[:pos])
        is_extern = "extern" in before.group()
        start = before.start()
        end = blank.find(";", pos)
        if end < 0:
            raise TransformError(f"{filename}:{_line_of(src, pos)}: __shared__ declaration without ';'")
        decl = src[pos + len("__shared__") : end]
        align = "1"
        found = _ALIGN.search(decl)
        if found:
            align = found.group("n")
            decl = decl[: found.start()] + decl[found.end() :]
        m = _DECL.match(decl.strip())
        if m is None or not m.group("type").strip() or "=" in decl or len(_split_top_level(decl)) > 1:
            raise TransformError(
                f"{filename}:{_line_of(src, pos)}: unsupported __shared__ declaration (one name, no initialiser)"
            )
        type_, name, dims = m.group("type").strip(), m.group("name"), re.sub(r"\s+", "", m.group("dims"))
        if is_extern:
            if not dims.startswith("[]"):
                raise TransformError(f"{filename}:{_line_of(src, pos)}: extern __shared__ must be an unsized array")
            target = f"{type_}{dims[2:]}"
            value = f"::emu::dynamic_shared_as<{target}>()"
            decl_code = f"auto* const {name} = {value};"
        else:
            target = f"{type_}{dims}"
            al = f"({align} > alignof({target}) ? {align} : alignof({target}))"
            value = f"::emu::block_shared<{target}>(&__emu_key_{name}, {al})"
            decl_code = f"static char __emu_key_{name}; auto& {name} = {value};"
        if in_code:
            new = decl_code + "\n" * src.count("\n", start, end)
        else:
            if is_extern:
                fn = f"inline auto* __emu_shared_{name}() {{ return {value}; }}"
            else:
                fn = f"inline auto& __emu_shared_{name}() {{ static char __emu_key_{name}; return {value}; }}"
            new = f'{fn}\n#define {name} (__emu_shared_{name}())\n#line {_line_of(src, end)} "{filename}"\n'
        edits.append((start, end + 1, new))
    for start, end, new in reversed(edits):
        src = src[:start] + new + src[end:]
    return src


def transform(src: str, filename: str) -> str:
    """The whole rewrite, with a ``#line`` so that diagnostics name the original file."""
    out = rewrite_shared(rewrite_launches(src), filename)
    return f'#line 1 "{filename}"\n' + out
