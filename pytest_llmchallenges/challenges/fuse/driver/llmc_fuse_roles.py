"""What each parameter of a candidate launcher is for: its role (logits, idx, probs, B, T, rows, V, K,
stream, temperature, default), read from its C types and names; where K sits among template parameters; and
the K values a run-time launcher dispatches on.

Pointers are placed by element type and name (float in, float out, integer indices); integers by name first,
then by position in the order B, T, rows, V, K. A parameter no rule places is an InterfaceError naming it,
with the manifest line that fixes it.
"""

from __future__ import annotations

import re

try:
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_source import Function, Param, matching
    from pytest_llmchallenges.child.llmc_errors import InterfaceError
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    from llmc_errors import InterfaceError  # type: ignore[no-redef]
    from llmc_fuse_source import Function, Param, matching  # type: ignore[no-redef]

INT_TYPES = {
    "int": "int32", "int32_t": "int32", "signed": "int32", "signed int": "int32", "unsigned": "uint32",
    "unsigned int": "uint32", "uint32_t": "uint32", "long": "int64", "long int": "int64", "long long": "int64",
    "long long int": "int64", "int64_t": "int64", "ptrdiff_t": "int64", "ssize_t": "int64", "size_t": "uint64",
    "uint64_t": "uint64", "unsigned long": "uint64", "unsigned long long": "uint64", "int16_t": "int16",
    "short": "int16",
}  # fmt: skip
FLOAT_TYPES = {"float": "float32", "double": "float64", "half": "float16", "__half": "float16"}
NAME_ROLES = [  # (role, regex on the lower-cased parameter name) for integers
    ("K", r"^(k|topk|top_k|kk|k_top|num_k|n_k|k_val|topk_k)$"),
    ("V", r"^(v|vocab|vocab_size|vocabsize|n_vocab|num_vocab|vsize|v_size|dim|d|cols|num_cols|n_cols|"
          r"num_classes|n_classes|vocab_len|row_len|row_size|ncols)$"),
    ("B", r"^(b|batch|batch_size|batchsize|bsz|bs|n_batch|num_batch|num_batches)$"),
    ("T", r"^(t|seq|seq_len|seqlen|seq_length|sequence_length|num_tokens|n_tokens|tokens|s|len)$"),
    ("rows", r"^(rows|n_rows|num_rows|nrows|bt|b_t|batch_seq|total_rows|m|num_vectors|outer|total|count|"
             r"batch_tokens|n_seq|num_seqs|nb|n)$"),
]  # fmt: skip


def _int_like(p: Param) -> bool:
    return not p.pointer and p.base in INT_TYPES


def name_role(name: str) -> str | None:
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
            named = name_role(p.name) if p.name else None
            if named is not None and named not in roles:
                roles[i] = named
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


def k_template_position(template: list[Param]) -> int | None:
    ints = [i for i, p in enumerate(template) if p.base in INT_TYPES or p.base in ("auto", "unsigned")]
    named = [i for i in ints if name_role(template[i].name) == "K"]
    if named:
        return named[0]
    free = [i for i in ints if template[i].default is None]
    return free[0] if len(free) == 1 else None


def template_args(template: list[Param], k_pos: int) -> list[str]:
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


def dispatch_ks(fn: Function, k_names: list[str]) -> list[int] | None:
    """Values of K a run-time launcher dispatches on: case labels of a switch on K, or K == N tests."""
    body = fn.body
    ks: set[int] = set()
    for name in k_names:
        for m in re.finditer(r"\bswitch\s*\(\s*" + re.escape(name) + r"\s*\)", body):
            end = matching(body, body.find("{", m.end()), "{", "}")
            ks.update(int(c) for c in re.findall(r"\bcase\s+(\d+)\s*:", body[m.end() : end]))
        ks.update(int(c) for c in re.findall(r"\b" + re.escape(name) + r"\s*==\s*(\d+)\b", body))
        ks.update(int(c) for c in re.findall(r"\b(\d+)\s*==\s*" + re.escape(name) + r"\b", body))
    return sorted(k for k in ks if 0 < k <= 4096) or None
