"""Run one driver function against one submission in a confined child process, and judge how it ended.

The grading process never imports submission code. Each call spawns a fresh interpreter in its own process
group, in a fresh temp copy of the challenge folder; arguments and results travel as frames on two pipes
(never stdout, never pickle). A watchdog enforces the wall-time limit and an RSS limit over the whole
process tree (an address-space limit would break CUDA), and everything the child started is killed after
the call.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import launcher, processes
from .grading import GradingFailure
from .sandboxed import llmc_wire

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MEMORY_LIMIT = 4 << 30
OUTPUT_TAIL = 4000
_POLL = 0.02

# Failures of a submission's import that cost a full time limit are remembered per challenge folder, so
# that the next tests of that folder fail at once with the same verdict instead of waiting again.
_IMPORT_FAILURES: dict[str, GradingFailure] = {}


@dataclass
class CallResult:
    value: Any
    seconds: float
    imports: list[str] = field(default_factory=list)
    output: str = ""
    peak_bytes: int | None = None
    attribution: str | None = None
    confinement: str = ""
    # efficiency laps: per driver mark, the parent's clock on receipt and on release, VmRSS and VmHWM then
    marks: list[dict[str, float]] = field(default_factory=list)


class _OutputTail:
    """Drains the child's stdout+stderr, keeping only a bounded tail (a child may print gigabytes)."""

    def __init__(self, stream: Any) -> None:
        self.total = 0
        self._tail = bytearray()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(stream.fileno(), 1 << 16):
                self.total += len(chunk)
                self._tail += chunk
                if len(self._tail) > 4 * OUTPUT_TAIL:
                    del self._tail[:-OUTPUT_TAIL]

    def text(self) -> str:
        self._thread.join(0.5)
        tail = bytes(self._tail[-OUTPUT_TAIL:]).decode("utf-8", "replace")
        cut = self.total - len(tail.encode())
        return (f"[... {cut} earlier bytes of output not kept ...]\n" if cut > 0 else "") + tail


def _child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    env.update(
        HOME=str(work / "home"),
        TMPDIR=str(work / "tmp"),
        CUPY_CACHE_DIR=str(work / "home" / ".cupy"),
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
    )
    return env


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the child process was killed by {name}"
    return f"the child process exited with status {code} before returning a result"


class Sandbox:
    """Calls into one challenge folder of one submission. One instance per test."""

    def __init__(
        self,
        challenge: str,
        challenge_dir: Path,
        timeout: float,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        seed: int = 0,
        confine: bool = True,
        override_timeout: float | None = None,
    ) -> None:
        self.challenge = challenge
        self.challenge_dir = Path(challenge_dir)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.seed = seed
        self.confine = confine
        self.override_timeout = override_timeout  # the user's --llm-timeout beats a test's own limit

    def run(
        self,
        function: str,
        *args: Any,
        timeout: float | None = None,
        memory_limit: int | None = None,
        measure_memory: bool = False,
        peak_limit: int | None = None,
        import_grace: float = 0.0,
        **kwargs: Any,
    ) -> CallResult:
        """Call ``function`` of the driver ("name", or "driver:name") with the given arguments.

        ``peak_limit`` (with ``measure_memory``): bytes the call may add to the child's RSS; the watchdog
        kills the child as soon as it is exceeded, so a call that materialises what it must not fails fast.
        ``import_grace``: seconds spent importing the submission that do not count against ``timeout``.
        """
        key = str(self.challenge_dir.resolve())
        if key in _IMPORT_FAILURES:
            earlier = _IMPORT_FAILURES[key]
            # the same one-line reason as the first time, so that verdicts do not depend on test order (-n 2)
            raise GradingFailure(
                earlier.category,
                earlier.reason,
                f"(seen at import in an earlier test; not run again)\n{earlier.detail}",
            )
        driver, _, function = function.rpartition(":")
        request = {
            "challenge": driver or self.challenge,
            "function": function,
            "args": tuple(args),
            "kwargs": kwargs,
            "measure_memory": measure_memory,
            "seed": self.seed,
            "grader_dir": str(PACKAGE_DIR),
            "confine": self.confine and os.environ.get("LLMC_CONFINE", "1") != "0",
        }
        work = Path(tempfile.mkdtemp(prefix="llmc-"))
        try:
            limit = self.override_timeout or timeout or self.timeout
            return self._run_in(work, request, limit, memory_limit or self.memory_limit, peak_limit, import_grace)
        except GradingFailure as failure:
            if getattr(failure, "phase", "") == "import" and failure.category in ("timeout", "crash", "memory"):
                _IMPORT_FAILURES[key] = failure
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_in(
        self, work: Path, request: dict, timeout: float, memory_limit: int, peak_limit: int | None, grace: float = 0.0
    ) -> CallResult:
        sub = work / "sub"
        shutil.copytree(self.challenge_dir, sub, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        for d in ("tmp", "home"):
            (work / d).mkdir()
        request["writable"] = [str(work)]
        env = _child_env(work)
        starter = launcher.launcher(env)
        child = starter.launch(sub, env)
        output = _OutputTail(child.stdout)
        with contextlib.suppress(OSError):
            Path(f"/proc/{child.pid}/oom_score_adj").write_text("1000")
        try:
            return self._supervise(child, output, request, timeout, memory_limit, peak_limit, grace)
        finally:
            processes.kill_tree(child.pid)
            for orphan in child.others():
                processes.kill_tree(orphan)
            starter.forget(child)
            for fd in (child.r_res, child.w_req):
                with contextlib.suppress(OSError):
                    os.close(fd)
            child.stdout.close()

    def _supervise(
        self,
        proc: launcher.Launched,
        output: _OutputTail,
        request: dict,
        timeout: float,
        memory_limit: int,
        peak_limit: int | None,
        grace: float = 0.0,
    ) -> CallResult:
        phase, confinement, baseline, measuring = "start", "", 0, False
        imported = 0.0  # time spent importing the submission, up to ``grace``, extends the deadline
        import_since: float | None = None
        r_res, w_req = proc.r_res, proc.w_req
        peak: int | None = None
        marks: list[dict[str, float]] = []
        with contextlib.suppress(BrokenPipeError):  # a child that died at start-up is judged below
            llmc_wire.write_frame(w_req, request)
        os.set_blocking(r_res, False)
        reader = llmc_wire.FrameReader()
        deadline = time.monotonic() + timeout + 0.5  # the child's own start-up is not the submission's time

        def fail(category: str, message: str, detail: str = "") -> GradingFailure:
            processes.kill_tree(proc.pid)
            tail = output.text().strip()
            if tail:
                detail = (detail + "\n" if detail else "") + "--- child output (tail) ---\n" + tail
            failure = GradingFailure(category, message, detail)
            failure.phase = phase  # type: ignore[attr-defined]
            return failure

        while True:
            now = time.monotonic()
            left = deadline + min(grace, imported + (now - import_since if import_since else 0.0)) - now
            if left <= 0:
                where = "while importing the submission" if phase == "import" else "during the call"
                raise fail("timeout", f"no result within the {timeout:g} s limit ({where}); process tree killed")
            ready, _, _ = select.select([r_res], [], [], min(_POLL, left))
            if ready:
                try:
                    data = os.read(r_res, 1 << 20)
                except BlockingIOError:
                    data = b"?"
                if not data:
                    code = proc.exit_code(5)
                    if code is None:
                        raise fail("crash", "the child closed its result pipe without exiting")
                    where = " while importing the submission" if phase == "import" else ""
                    raise fail("crash", _describe_exit(code) + where)
                if data != b"?":
                    try:
                        reader.feed(data)
                        messages = reader.frames()
                    except llmc_wire.WireError as exc:
                        raise fail("crash", f"the child wrote a malformed result frame ({exc})") from None
                    for msg in messages:
                        if not isinstance(msg, dict):
                            continue
                        event = msg.get("event")
                        if event == "confined":
                            confinement = str(msg.get("status"))
                        elif event == "phase":
                            if import_since:
                                imported += time.monotonic() - import_since
                            phase = str(msg.get("phase"))
                            import_since = time.monotonic() if phase == "import" else None
                        elif event == "ready":
                            processes.reset_peak_rss(proc.pid)
                            baseline = processes.status_field(proc.pid, "VmRSS") or 0
                            measuring = True
                            llmc_wire.write_frame(w_req, "go")
                        elif event == "done":
                            hwm = processes.status_field(proc.pid, "VmHWM")
                            peak = None if hwm is None else max(0, hwm - baseline)
                            measuring = False
                            llmc_wire.write_frame(w_req, "send")
                        elif event == "mark":  # timed from here, where the submission cannot reach the clock
                            got = time.perf_counter()
                            hwm = processes.status_field(proc.pid, "VmHWM") or 0
                            processes.reset_peak_rss(proc.pid)
                            rss = processes.status_field(proc.pid, "VmRSS") or 0
                            marks.append({"recv": got, "hwm": hwm, "rss": rss, "go": time.perf_counter()})
                            llmc_wire.write_frame(w_req, "go")
                        elif event == "result":
                            processes.kill_tree(proc.pid)  # done: closing its output lets the tail be read at once
                            result = self._finish(msg, output, peak, confinement, fail)
                            result.marks = marks
                            return result
            if measuring and peak_limit is not None:
                extra = (processes.status_field(proc.pid, "VmHWM") or 0) - baseline
                if extra > peak_limit:
                    raise fail(
                        "memory",
                        f"the call's peak memory went over its bound of {peak_limit / 2**20:.1f} MiB (measured "
                        "from outside the child); process tree killed",
                        f"peak so far: {extra / 2**20:.1f} MiB above the RSS before the call",
                    )
            rss = processes.tree_rss(proc.pid)
            if rss > memory_limit:
                raise fail(
                    "memory",
                    f"resident memory went over the {memory_limit / 2**20:.0f} MiB cap; process tree killed",
                    f"resident memory of the process tree: {rss / 2**20:.0f} MiB",
                )

    @staticmethod
    def _finish(msg: dict, output: _OutputTail, peak: int | None, confinement: str, fail: Any) -> CallResult:
        if not msg.get("ok"):
            category = str(msg.get("category", "error"))
            if category not in ("error", "crash", "timeout", "memory", "interface", "compile"):
                category = "error"
            raise fail(category, str(msg.get("message", ""))[:4000], str(msg.get("detail", ""))[:4000])
        return CallResult(
            value=msg.get("value"),
            seconds=float(msg.get("seconds", 0.0)),
            imports=[str(m) for m in msg.get("imports", [])],
            output=output.text(),
            peak_bytes=peak,
            attribution=msg.get("attribution"),
            confinement=confinement,
        )
