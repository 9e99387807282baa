"""The grader's values laid out like the submission's own model answers: logits, log-probabilities or
probabilities, with or without a batch axis, every position or the last one only."""

from __future__ import annotations

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import InterfaceError
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import InterfaceError  # type: ignore[no-redef]


def softmax_kind(example: np.ndarray) -> str:
    rows = np.asarray(example, dtype=np.float64).reshape(-1, example.shape[-1])
    if not np.all(np.isfinite(rows)):
        return "logits"
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    if np.all(rows <= 1e-9) and np.allclose(lse, 0.0, atol=1e-5):
        return "log_probs"
    if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-5):
        return "probs"
    return "logits"


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def fit(out: np.ndarray, lead: tuple[int, ...], example: np.ndarray, name: str) -> np.ndarray:
    """Our (*lead, X) array in the layout of the submission's example answer."""
    base = len(lead) + 1
    if example.ndim == base:
        return out
    if example.ndim == base + 1:
        return out[None]
    if example.ndim == base - 1:
        if len(lead) == 2 and lead[0] == 1 and example.shape[0] == lead[1]:
            return out[0]  # (1, L) in, (L, X) out
        return out[..., -1, :]  # the last position only
    raise InterfaceError(f"target_model.{name}: cannot lay out {out.shape} like the submission's {example.shape}")
