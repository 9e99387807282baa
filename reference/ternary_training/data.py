"""Train/validation split and next-token batches.

The split is made on the raw text, before the tokenizer is trained: every 10th paragraph is held out, so
no validation byte ever reaches the tokenizer's merge statistics or a training batch.
"""

from __future__ import annotations

import numpy as np

HOLDOUT_EVERY = 10


def split_train_validation(text: str, every: int = HOLDOUT_EVERY) -> tuple[str, str]:
    """(train_text, validation_text): paragraph i goes to validation when i % every == every - 1."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    train = [p for i, p in enumerate(paragraphs) if i % every != every - 1]
    held_out = [p for i, p in enumerate(paragraphs) if i % every == every - 1]
    return "\n\n".join(train) + "\n\n", "\n\n".join(held_out) + "\n\n"


def get_batch(
    tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random windows: inputs tokens[i : i+T] and targets tokens[i+1 : i+T+1] (the next token at each position)."""
    starts = rng.integers(0, len(tokens) - seq_len - 1, size=batch_size)
    x = np.stack([tokens[s : s + seq_len] for s in starts])
    y = np.stack([tokens[s + 1 : s + seq_len + 1] for s in starts])
    return x.astype(np.int64), y.astype(np.int64)


def eval_windows(tokens: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive non-overlapping windows covering the sequence once: every token after the first is a target."""
    n = (len(tokens) - 1) // seq_len
    x = np.asarray(tokens[: n * seq_len]).reshape(n, seq_len)
    y = np.asarray(tokens[1 : n * seq_len + 1]).reshape(n, seq_len)
    return x.astype(np.int64), y.astype(np.int64)
