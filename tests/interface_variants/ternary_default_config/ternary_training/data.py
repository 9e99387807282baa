"""Train/validation split and next-token batches.

The split is made on the raw text, before the tokenizer is trained: every 10th paragraph is held out, so
no validation byte ever reaches the tokenizer's merge statistics or a training batch.
"""

from __future__ import annotations

import numpy as np

HOLDOUT_EVERY = 10


def holdout_split(corpus: str, every: int = HOLDOUT_EVERY) -> dict[str, str]:
    """{"train": ..., "validation": ...}: paragraph i is held out when i % every == every - 1."""
    paragraphs = [p.strip() for p in corpus.split("\n\n") if p.strip()]
    kept = [p for i, p in enumerate(paragraphs) if i % every != every - 1]
    held = [p for i, p in enumerate(paragraphs) if i % every == every - 1]
    return {"train": "\n\n".join(kept) + "\n\n", "validation": "\n\n".join(held) + "\n\n"}


def batch_windows(stream: np.ndarray, count: int, span: int, generator: np.random.Generator) -> dict[str, np.ndarray]:
    """{"inputs", "targets"}: ``count`` random windows of ``span`` tokens and the windows one token later."""
    starts = generator.integers(0, len(stream) - span - 1, size=count)
    windows = np.stack([stream[s : s + span + 1] for s in starts]).astype(np.int64)
    return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def eval_windows(tokens: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive non-overlapping windows covering the sequence once: every token after the first is a target."""
    n = (len(tokens) - 1) // seq_len
    x = np.asarray(tokens[: n * seq_len]).reshape(n, seq_len)
    y = np.asarray(tokens[1 : n * seq_len + 1]).reshape(n, seq_len)
    return x.astype(np.int64), y.astype(np.int64)
