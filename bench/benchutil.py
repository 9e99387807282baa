"""Helpers the bench scripts share: BLAS threads as in the sandbox, loading a reference file, best-of-n timing.

The scripts run as ``python bench/<name>.py``, which puts this folder first on sys.path. Nothing here imports
numpy, so that :func:`single_threaded_blas` can still take effect.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def single_threaded_blas() -> None:
    """One BLAS thread, as in the grading sandbox, unless the environment says otherwise; call before numpy loads."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def load(path: Path) -> ModuleType:
    """A reference's Python file as a module of its own (not on sys.path, not in the grading sandbox)."""
    spec = importlib.util.spec_from_file_location(path.stem + "_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_seconds(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The fastest of `repeat` runs, and the last run's result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
