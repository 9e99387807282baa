"""The probe rule: what it means when an attempt to drive a submission fails. Written once, used by drivers.

A driver lists candidates for a role (``Answer.candidates``: the manifest, the prompt's names, name
patterns) and makes *attempts*: for one candidate (or a pair) in one calling convention, build an adapter
and run it once on a tiny input the prompt allows. An attempt ends in one of three ways.

1. **It works.** The first attempt that works, in rank order, is the adapter. From then on the answer is
   driven the way it was probed, so an exception in a later call is the answer's error.
2. **The answer's error.** The submission's own code raised (the traceback passes through its files) in a
   call that *matches the role*: the candidate is named by ``llmchallenge.toml`` or by the prompt, or every
   argument was bound to its own parameters by their names, and the call is not a convention the driver
   merely tries (see :func:`guess`). The answer declared this is how it is called, so the exception is
   its bug (category ``error``). It is kept and raised only when no later attempt works: a helper that
   works is still graded, and a broken declared function is never reported as "not driven".
3. **A failed probe.** Everything else: a binding that does not fit, an output no convention can read, an
   exception from the call itself before any of the answer's code ran (a TypeError for a wrong argument
   count), and any exception on a guessed convention (a pattern-found candidate whose parameters were
   filled by position, a constructor given guessed sizes, the cache passed back piece by piece). Such a
   failure says that the grader guessed wrong, not that the answer is wrong: note it and try the next.

When no attempt works and none raised the answer's error, the verdict is ``interface`` (``not_driven``):
what was tried, one line each, and the manifest line that would have made the first attempt the right one.
When there was no attempt at all (no candidate matches the role), it is a plain ``interface`` failure: the
answer lacks what the prompt asks for, which is not the grader failing to drive it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

try:
    from .llmc_errors import InterfaceError, SubmissionError, exc_line
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_errors import InterfaceError, SubmissionError, exc_line  # type: ignore[no-redef]

MAX_ATTEMPTS = 16


@dataclass
class Attempt:
    """One way to drive a role: ``make()`` builds the adapter (loading the candidates it needs).

    ``documented``: every candidate in it is named by the manifest or by the prompt, so binding its
    parameters by the prompt's positions is calling it by its documented signature."""

    label: str
    make: Callable[[], Any]
    documented: bool = False

    def __str__(self) -> str:
        return self.label


@contextlib.contextmanager
def guess(why: str) -> Iterator[None]:
    """Calls made inside are a convention the driver tries, not one the answer declares: an exception from
    them is a failed probe (rule 3), whatever the candidate."""
    try:
        yield
    except SubmissionError as exc:
        exc.guess = exc.guess or why
        raise


def charged(exc: BaseException, attempt: Attempt) -> bool:
    """Rule 2: is this failure of ``attempt`` the answer's own error?"""
    if not isinstance(exc, SubmissionError) or exc.category != "error":
        return False
    if not exc.own_frames or exc.guess:
        return False
    return attempt.documented or not exc.by_position


def one_line(exc: BaseException) -> str:
    """An attempt's failure in the list of what was tried: the toolkit's own errors already say what failed,
    so they lose the type name that any other exception keeps."""
    text = str(exc).strip().splitlines()
    if isinstance(exc, (InterfaceError, SubmissionError)):
        return text[0][:300] if text else type(exc).__name__
    return exc_line(exc)


def first_working(
    attempts: Iterable[Attempt],
    probe: Callable[[Any], Any],
    none_fits: Callable[[list[str]], InterfaceError],
) -> tuple[Any, Any]:
    """(adapter, probe result) of the first attempt that survives ``probe``, by the rule above.

    ``none_fits(tried)`` builds the interface error (``Answer.interface_error`` with its fix line)."""
    tried: list[str] = []
    answer_error: SubmissionError | None = None
    for n, attempt in enumerate(attempts):
        if n >= MAX_ATTEMPTS:
            break
        try:
            adapter = attempt.make()
            return adapter, probe(adapter)
        except Exception as exc:  # any failure is a probe outcome; SubmissionExit (a BaseException) is not
            note = one_line(exc)
            if isinstance(exc, SubmissionError) and not charged(exc, attempt):
                why = exc.guess or ("raised before its code ran" if not exc.own_frames else "")
                why = why or f"parameters {', '.join(exc.by_position)} bound by position, not by name"
                note += f" [a failed probe: {why}]"
            tried.append(f"{attempt}: {note}")
            if answer_error is None and charged(exc, attempt):
                answer_error = exc  # type: ignore[assignment]
    if answer_error is not None:
        others = [t for t in tried if not t.endswith(one_line(answer_error))]
        raise _with_context(answer_error, others)
    error = none_fits(tried)
    error.not_driven = bool(tried)  # no attempt at all: nothing matches the role, a plain interface failure
    raise error


def _with_context(exc: SubmissionError, others: list[str]) -> SubmissionError:
    if not others:
        return exc
    raised = SubmissionError(
        f"{exc} (while probing; also tried: {'; '.join(others[:4])})",
        exc.detail,
        exc.category,
        exc.own_frames,
        exc.by_position,
    )
    return raised
