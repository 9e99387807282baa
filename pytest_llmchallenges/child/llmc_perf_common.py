"""Timed repetitions inside the child for the efficiency axis (llmc_perf_*): the clock is the parent's.

A repetition is bracketed by ``sub.mark()``: the grading process stamps each mark when it reads it and lets the
child go on only afterwards, so nothing in this process can move the measurement. Inputs of each repetition are
built from its own seed before the first mark; one untimed warm-up run comes first (imports, caches, BLAS).

Peak memory: a warm process reuses the heap pages an earlier repetition freed, so the resident-memory peak of a
timed repetition says little. With ``memory=True`` one more repetition follows the timed ones, after freed heap
memory was handed back to the system (``malloc_trim``): its peak is what that run touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Callable
from typing import Any

try:
    from .llmc_api import Answer
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]

WARM_SEED = 7


def mark(sub: Answer) -> None:
    """A lap boundary; a no-op outside a sandbox that stamps marks (e.g. when a driver is run directly)."""
    fn = getattr(sub, "mark", None)
    if fn is not None:
        fn()


def trim_heap() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the memory lap then reads high, never low
        ctypes.CDLL(None).malloc_trim(0)


def timed_reps(
    sub: Answer,
    seeds: list[int],
    make_inputs: Callable[[int], tuple],
    run: Callable[..., Any],
    memory: bool = False,
    warm_inputs: tuple | None = None,
) -> list[Any]:
    """``run(*inputs)`` once untimed, then once per seed between two marks (then the memory lap); the outputs
    of the timed repetitions in order."""
    run(*(warm_inputs if warm_inputs is not None else make_inputs(WARM_SEED)))
    sub.ready()
    outputs = []
    for seed in seeds:
        inputs = make_inputs(int(seed))
        mark(sub)
        out = run(*inputs)
        mark(sub)
        outputs.append(out)
    if memory:
        inputs = make_inputs(WARM_SEED + 1)
        outputs_kept = outputs  # the timed outputs stay alive, as they would in the caller
        trim_heap()
        mark(sub)
        run(*inputs)
        mark(sub)
        outputs = outputs_kept
    return outputs
