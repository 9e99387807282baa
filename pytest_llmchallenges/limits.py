"""Per-call time limits derived from the reference's time for the same call, measured in this run.

Why: a fixed limit per challenge (60 s for flash_attention) makes every call of an answer that never returns
cost the full minute; a folder with a few such answers took many minutes to grade. The reference answers the
same call in this run, on this machine, under the same load; LIMIT_FACTOR times that (at least MIN_LIMIT_S,
never more than the challenge's own limit) is ample for any correct answer and cuts a hung one short. Time
spent importing the submission is not the call's: it may use what the challenge's own limit leaves.
``--llm-timeout`` still overrides everything, and a timeout message says what its limit was derived from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .calls import CallResult, Sandbox
from .grading import GradingFailure

LIMIT_FACTOR = 20.0
MIN_LIMIT_S = 5.0

# (challenge, test, index of the call within the test) -> the reference's seconds, or None when the
# reference itself could not answer that call (the challenge's limit then applies)
_REFERENCE_SECONDS: dict[tuple[str, str, int], float | None] = {}


class CalibratedSandbox(Sandbox):
    """A Sandbox whose calls get a limit from the reference's time for the same call (made once per process)."""

    def __init__(self, *args: Any, test: str, reference_dir: Path | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.test = test
        self.reference_dir = reference_dir
        self._calls = 0

    def _reference_seconds(self, key: tuple[str, str, int], function: Any, args: tuple, kwargs: dict) -> float | None:
        if key not in _REFERENCE_SECONDS:
            assert self.reference_dir is not None
            ref = Sandbox(self.challenge, self.reference_dir, self.timeout, self.memory_limit, self.seed, self.confine)
            try:  # the driver's own time in the child: trusted code, and no process start-up in it
                _REFERENCE_SECONDS[key] = ref.run(function, *args, **kwargs).seconds
            except GradingFailure:
                _REFERENCE_SECONDS[key] = None
        return _REFERENCE_SECONDS[key]

    def run(self, function: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> CallResult:
        index, self._calls = self._calls, self._calls + 1
        own = timeout or self.timeout
        if self.override_timeout or self.reference_dir is None or self._is_reference():
            return super().run(function, *args, timeout=timeout, **kwargs)
        key = (self.challenge, self.test, index)
        ref = self._reference_seconds(key, function, args, {"timeout": timeout, **kwargs})
        if ref is None:
            return super().run(function, *args, timeout=timeout, **kwargs)
        limit = min(own, max(MIN_LIMIT_S, LIMIT_FACTOR * ref))
        try:  # importing the submission is not the call: it may use what the challenge's own limit leaves
            return super().run(function, *args, timeout=limit, import_grace=own - limit, **kwargs)
        except GradingFailure as exc:
            if exc.category != "timeout" or limit >= own:
                raise
            why = (
                f" (limit {limit:.1f} s: {LIMIT_FACTOR:g}x the reference's {ref:.2f} s for this call in this run, "
                f"at least {MIN_LIMIT_S:g} s, import time not counted; --llm-timeout overrides)"
            )
            raise GradingFailure(exc.category, exc.reason + why, exc.detail) from None

    def _is_reference(self) -> bool:
        assert self.reference_dir is not None
        return self.challenge_dir.resolve() == self.reference_dir.resolve()
