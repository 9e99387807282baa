"""The ternary driver's common ground: which framework an answer uses (NumPy or MLX), moving arrays between it
and NumPy, the parameter-name patterns every binding of this driver uses, and finding a layer's forward.

Kept apart so that the projection, model and training modules share one reading of an answer's tensors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, Candidate, InterfaceError
    from pytest_llmchallenges.child.llmc_bind import Binding, bind, parameters
    from pytest_llmchallenges.child.llmc_probe import guess
except ImportError:  # inside the child, where the toolkit folder is on sys.path
    from llmc_api import Answer, Candidate, InterfaceError  # type: ignore[no-redef]
    from llmc_bind import Binding, bind, parameters  # type: ignore[no-redef]
    from llmc_probe import guess  # type: ignore[no-redef]

GROUP = 128

NAMES = {
    "vocab": r"^(vocab(_size)?|n_?vocab|num_tokens|v)$",
    "hidden": r"^(hidden_size|d_?model|dim|n_?embd|embed_dim|hidden_dim|d|emb_dim|model_dim|width)$",
    "layers": r"^(num_hidden_layers|n_?layers?|num_layers|depth|layers)$",
    "heads": r"^(num_attention_heads|n_?heads?|num_heads|heads|n_q_heads)$",
    "kv_heads": r"^(num_key_value_heads|n_?kv_?heads?|num_kv_heads|kv_heads|n_kv)$",
    "head_dim": r"^(head_dim|d_?head|head_size)$",
    "ffn": r"^(intermediate_size|ffn_?dim|d_?ff|hidden_dim_ff|ff_dim|mlp_dim|ffn_hidden|d_?hidden|intermediate)$",
    "ctx": r"^(max_position_embeddings|max_seq_len|block_size|seq_len|context_length|max_len|n_ctx|ctx_len)$",
    "group": r"^(group_size|gs|group|quant_group_size)$",
    "in": r"^(in_features|input_dims?|in_dims?|input_dim|d_in|fan_in|in_f|n_in|input_size|in_size|in_channels"
    r"|dim_in|din)$",
    "out": r"^(out_features|output_dims?|out_dims?|d_out|fan_out|out_f|n_out|output_size|out_size|out_channels"
    r"|dim_out|dout)$",
    "bias": r"^(bias|use_bias|has_bias)$",
    "model": r"^(model|net|lm|m|network|module)$",
    "optimizer": r"^(opt|optim|optimizer|optimiser)$",
    "x": r"^(x|xb|inputs?|ids|input_ids|tokens|idx|batch_x|x_batch|inp)$",
    "y": r"^(y|yb|targets?|labels?|batch_y|y_batch|tgt)$",
    "lr": r"^(lr|learning_rate|eta|step_size|alpha)$",
    "batch": r"^(batch|xy|batch_data)$",
    "data": r"^(data|tokens|ids|arr|dataset|train_data|source|seq|token_ids|encoded|split|corpus|text"
    r"|train_ids)$",
    "batch_size": r"^(batch_size|bs|b|n_batch|batch_sz|nb)$",
    "seq_len": r"^(seq_len|max_seq_len|block_size|context(_len(gth)?)?|ctx(_len)?|t|seq_length|length|n_ctx|max_len"
    r"|window|seqlen)$",
    "rng": r"^(rng|generator|random_state|gen|rs)$",
    "seed": r"^seed$",
    "params": r"^(params|parameters|named_params|param_dict|weights|model_params|param_list)$",
    "w": r"^(w|weight|weights|x|tensor|w_latent|latent|arr|mat|matrix|param|p|v|t|w_fp|w_float)$",
}  # fmt: skip

BUFFER = re.compile(r"(cos|sin|rope|freq|mask|cache|causal|tril|triu|pos(ition)?_|grad|moment|^m$|^v$|_m$|_v$|adam)")
WEIGHT_NAME = re.compile(r"^(weight|w|weights|latent(_weight)?|w_latent|kernel|table|embedding|embeddings|emb|e)$")
GRAD_NAME = re.compile(r"(grad|^d_?w$|^dw$|^d_?weight$|^g_?w$|^dW$)", re.IGNORECASE)


# -- frameworks ----------------------------------------------------------------------------------------------------
def mlx() -> tuple[Any, Any] | None:
    """(mlx.core, mlx.nn), or None where mlx is not installed."""
    try:
        import mlx.core as mx
        import mlx.nn as nn

        return mx, nn
    except Exception:
        return None


def framework(sub: Answer) -> str:
    """'mlx' when any of the submission's files imports mlx, else 'numpy'."""
    return "mlx" if any("mlx" in mods for mods in sub.scan.imports.values()) else "numpy"


def need_framework(sub: Answer) -> dict | None:
    """The skip an MLX answer gets where mlx is missing (the suite turns it into a pytest skip), else None."""
    if framework(sub) == "mlx" and mlx() is None:
        return {"skip": "the submission uses MLX and mlx is not installed here (pip install 'mlx[cpu]')"}
    return None


def is_mx(value: Any) -> bool:
    return type(value).__module__.startswith("mlx")


def to_numpy(value: Any, what: str) -> np.ndarray:
    """A NumPy array from an MLX (bfloat16 included), torch or array-like value."""
    if is_mx(value):
        mx = mlx()[0]  # type: ignore[index]
        mx.eval(value)
        value = np.array(value.astype(mx.float32)) if value.dtype in (mx.bfloat16,) else np.array(value)
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return Answer.array(value, what)


def like(sub: Answer, arr: np.ndarray) -> Any:
    """An input in the submission's framework: mx.array for MLX answers, the NumPy array otherwise."""
    if framework(sub) == "mlx":
        return mlx()[0].array(arr)  # type: ignore[index]
    return arr


# -- candidates and binding -----------------------------------------------------------------------------------------
def load(cand: Candidate) -> Any:
    """A candidate's object. A file that does not import on its own (a package-relative import, a library
    missing here) makes a failed probe, as ``Answer.classes`` treats it: answers spread their code over
    scripts that the grader imports one by one, and the working one is graded."""
    with guess("its file, imported on its own here, raised"):
        return cand.load()


# -- binding ---------------------------------------------------------------------------------------------------------
def bind_named(fn: Callable[..., Any], values: Mapping[str, Any], order: list[str]) -> Binding:
    """llmc_bind.bind of ``values`` to ``fn``, each value's parameter names given by :data:`NAMES`."""
    return bind(fn, values, {k: NAMES[k] for k in values if k in NAMES}, order)


def with_required_group(fn: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """The answer's own default group size is what is graded: 128 is passed only to a parameter without one."""
    required = any(p.default is p.empty and re.search(NAMES["group"], p.name.lower()) for p in parameters(fn))
    return {**values, "group": GROUP} if required else values


def first_line(exc: BaseException, width: int) -> str:
    return str(exc).splitlines()[0][:width] if str(exc) else type(exc).__name__


# -- an object's methods ---------------------------------------------------------------------------------------------
def method(obj: Any, pattern: str, exclude: tuple[str, ...] = ()) -> Callable[..., Any] | None:
    for name in dir(type(obj)):
        if name not in exclude and re.search(pattern, name) and callable(getattr(obj, name, None)):
            return getattr(obj, name)
    return None


def forward(obj: Any) -> Callable[..., Any]:
    """The forward pass of a layer or model object: ``forward``, ``__call__``, or ``fwd``/``apply``/``run``."""
    fwd = method(obj, r"^(forward|fwd|__call__)$") if "forward" in dir(type(obj)) else None
    if fwd is None:
        fwd = obj if callable(obj) else method(obj, r"^(forward|fwd|apply|run)$")
    if fwd is None:
        raise InterfaceError(f"{type(obj).__name__} has no forward/__call__")
    return fwd
