"""Verdicts: failure categories and the comparison helpers every suite uses.

A wrong answer is an ``AssertionError`` (category ``wrong``). Every other way a submission can fail is a
:class:`GradingFailure` carrying its category, so that reports can say *why* a test failed.
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np

# "grader": a fault of the grader itself (plugin, suite, oracle, driver), never charged to a model.
# "not_driven": the grader found no way to call the answer (scored as failed, reported apart from real failures).
CATEGORIES = (
    "ok", "wrong", "error", "crash", "timeout", "memory", "interface", "compile", "skipped", "grader", "not_driven",
)  # fmt: skip


class GradingFailure(AssertionError):
    """A failed test with a category other than ``wrong``; ``str()`` is the one-line reason plus detail."""

    def __init__(self, category: str, message: str, detail: str = "") -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        self.category = category
        self.reason = message
        self.detail = detail
        text = f"[{category}] {message}"
        if detail:
            text += "\n" + detail
        super().__init__(text)


def wrong(message: str) -> NoReturn:
    """Fail the test as a wrong answer."""
    raise AssertionError(message)


class DesignError(RuntimeError):
    """A suite's check of its own inputs failed: the grader's fault (category ``grader``), never the answer's."""


def design(condition: bool, message: str) -> None:
    """Check something about the test itself (its scripted model, its expected values): a failure is ours."""
    if not condition:
        raise DesignError(f"test design: {message}")


def as_array(value: object, what: str) -> np.ndarray:
    """A numeric float64 array from a submission's output, or a ``wrong`` failure saying why not."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # a ragged list and the like
        wrong(f"{what}: not an array ({exc})")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        wrong(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def normwise_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / max|expected|: the error measure all suites report."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(actual: object, expected: np.ndarray, rtol: float, what: str) -> None:
    """Shape, finiteness and normwise relative error of ``actual`` against a float64 ``expected``.

    NaN or inf anywhere fails, whatever the tolerance; so does an all-zero output where the expected one is
    not (a zero answer must never pass by a loose tolerance).
    """
    got = as_array(actual, what)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        wrong(f"{what}: shape {got.shape}, expected {expected.shape}")
    bad = ~np.isfinite(got)
    if bad.any():
        wrong(f"{what}: {int(bad.sum())} of {got.size} values are NaN or inf")
    if expected.size and not np.any(got) and np.any(expected):
        wrong(f"{what}: all zeros")
    err = normwise_error(got, expected)
    if not err <= rtol:
        where = np.unravel_index(int(np.argmax(np.abs(got - expected))), got.shape)
        wrong(
            f"{what}: normwise relative error max|d|/max|ref| = {err:.3g} > {rtol:g} "
            f"(worst at index {tuple(int(i) for i in where)}: got {got[where]:.6g}, expected {expected[where]:.6g})"
        )
