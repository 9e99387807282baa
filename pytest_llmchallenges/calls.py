"""Run one driver function against one submission in a confined child process, and judge how it ended.

The grading process never imports submission code. Each call runs in a fresh child process, isolated by the
operating system where the host allows it (namespaces, Landlock, a cgroup: see isolation.py), in a fresh
copy of the challenge folder; arguments and results travel as frames on two pipes (never stdout, never
pickle), and a result frame over a bound is refused before it is read. A watchdog enforces the wall-time
limit and a memory cap over the whole process tree (an address-space limit would break CUDA); peak memory
comes from the kernel (the call's cgroup), and everything the child started is killed after the call.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import isolation, launcher, processes, registry
from .child import llmc_entry, llmc_isolate, llmc_wire
from .grading import GradingFailure

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MEMORY_LIMIT = 4 << 30
OUTPUT_TAIL = 4000
_POLL = 0.02
MIN_RESULT_BOUND = 64 << 20
SETUP_SECONDS = 10
_ENV_NAMES = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM"}
_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "CUPY_", "NUMBA_", "XLA_", "MLX_")


class IsolationUnavailable(RuntimeError):
    """--llm-isolation=strict on a host that lacks one of the mechanisms (a grader error, not a verdict)."""


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
    skipped: list[str] = field(default_factory=list)
    cpu_seconds: float | None = None  # CPU time of the call's whole process tree (the cgroup's), start-up included
    # efficiency laps: per driver mark, the parent's clock on receipt and on release, VmRSS and VmHWM then
    marks: list[dict[str, float]] = field(default_factory=list)


class _OutputTail:
    """Drains the child's stdout+stderr, keeping only a bounded tail (a child may print gigabytes)."""

    def __init__(self, stream: Any) -> None:
        self.total = 0
        self._tail = bytearray()
        self._fd = stream.fileno()
        self._reading = False
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                self._reading = False
                select.select([self._fd], [], [])
                self._reading = True
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    return
                self.total += len(chunk)
                self._tail += chunk
                if len(self._tail) > 4 * OUTPUT_TAIL:
                    del self._tail[:-OUTPUT_TAIL]

    def _drained(self) -> bool:
        """Everything written so far has been taken in (the pipe is empty and the drain is waiting)."""
        try:
            pending = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return not self._thread.is_alive()
        return pending == 0 and not self._reading

    def text(self, eof: bool = True) -> str:
        """The tail; with ``eof`` False, as soon as what the child wrote before now is in (a child that has sent
        its result has written all it will be graded with; waiting for every process to exit costs a
        namespace's teardown)."""
        deadline = time.monotonic() + 0.5
        if eof:
            self._thread.join(0.5)
        while not eof and time.monotonic() < deadline and self._thread.is_alive():
            if self._drained():
                time.sleep(0.001)
                if self._drained():
                    break
            time.sleep(0.001)
        tail = bytes(self._tail[-OUTPUT_TAIL:]).decode("utf-8", "replace")
        cut = self.total - len(tail.encode())
        return (f"[... {cut} earlier bytes of output not kept ...]\n" if cut > 0 else "") + tail


def _child_env(home: str, tmp: str) -> dict[str, str]:
    """An allowlist (locale, CUDA, search path), never a copy of the grader's environment."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}
    env.update(
        HOME=home,
        TMPDIR=tmp,
        CUPY_CACHE_DIR=home + "/.cupy",
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


def _remove(folder: Path) -> None:
    """Remove a temp folder whatever a child left in it (a tree too deep for shutil.rmtree's recursion)."""
    try:
        shutil.rmtree(folder, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--", str(folder)], check=False, capture_output=True)


def _array_bytes(value: Any, depth: int = 0) -> int:
    """Bytes of the arrays in a call's arguments (the result bound grows with what the call is given)."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if depth < 4 and isinstance(value, (list, tuple)):
        return sum(_array_bytes(v, depth + 1) for v in value)
    if depth < 4 and isinstance(value, dict):
        return sum(_array_bytes(v, depth + 1) for v in value.values())
    return 0


class _Meter:
    """Memory of one call's process tree, read from outside the child: from the call's cgroup (the kernel's
    count, helper processes included) or, without one, from /proc (VmHWM of the serving process, plus
    samples of the whole tree every poll)."""

    def __init__(self, pid: int, cgroup: isolation.CallCgroup | None, isolated: bool) -> None:
        self.pid, self.cgroup, self.isolated = pid, cgroup, isolated
        self.measuring = self.sampled = False
        self.baseline = self.tree_base = self.tree_max = self.highest = 0
        self.server = pid
        self.source = f"cgroup {cgroup.mode}" if cgroup else "/proc samples"

    def _find_server(self) -> int:
        """The process that serves the call: the child, or in a pid namespace pid 1's first child."""
        if not self.isolated:
            return self.pid
        for init in processes.children(self.pid):
            inner = processes.children(init)
            if inner:
                return min(inner)
        return self.pid

    def start(self) -> None:
        """Start (or restart, at an efficiency mark) a measurement; a restart never forgets an earlier peak, so
        a child that forges a mark frame after freeing a large allocation hides nothing from ``peak()``."""
        if self.measuring:
            self.highest = max(self.highest, self.extra())
        if self.cgroup is not None and self.cgroup.reset_peak():
            self.baseline = self.cgroup.peak()
        elif self.cgroup is not None:  # a peak the kernel cannot reset: the cgroup's usage, sampled
            self.sampled = True
            self.baseline = self.tree_max = self.cgroup.usage()
        else:
            self.server = self._find_server()
            processes.reset_peak_rss(self.server)
            self.baseline = processes.status_field(self.server, "VmRSS") or 0
            self.tree_base = self.tree_max = processes.tree_rss(self.pid)
        self.measuring = True

    def sample(self) -> None:
        if self.measuring and self.sampled and self.cgroup is not None:
            self.tree_max = max(self.tree_max, self.cgroup.usage())
        elif self.measuring and self.cgroup is None:
            self.tree_max = max(self.tree_max, processes.tree_rss(self.pid))

    def extra(self) -> int:
        if self.cgroup is not None and self.sampled:
            return max(0, self.tree_max - self.baseline, self.cgroup.usage() - self.baseline)
        if self.cgroup is not None:
            return max(0, self.cgroup.peak() - self.baseline)
        hwm = processes.status_field(self.server, "VmHWM") or 0
        return max(0, hwm - self.baseline, self.tree_max - self.tree_base)

    def peak(self) -> int:
        """The largest increase over any measurement of the call."""
        return max(self.highest, self.extra())

    def usage(self) -> int:
        return self.cgroup.usage() if self.cgroup is not None else processes.tree_rss(self.pid)


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
        isolation: str | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.challenge = challenge
        self.challenge_dir = Path(challenge_dir)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.seed = seed
        self.confine = confine
        self.override_timeout = override_timeout  # the user's --llm-timeout beats a test's own limit
        self.isolation = isolation or os.environ.get("LLMC_ISOLATION", "auto")
        self._note = note  # the test's report notes: entries of the folder the copy skipped, named once
        self._noted = False

    def _skipped(self, entries: list[str]) -> None:
        if entries and self._note is not None and not self._noted:
            self._noted = True
            self._note(f"not copied into the sandbox: {', '.join(sorted(entries)[:10])}")

    def run(
        self,
        function: str | Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
        memory_limit: int | None = None,
        measure_memory: bool = False,
        peak_limit: int | None = None,
        result_bound: int | None = None,
        import_grace: float = 0.0,
        **kwargs: Any,
    ) -> CallResult:
        """Call a driver function with the given arguments: an ``@entry`` function of a driver, or the name
        ("name", "driver:name") of a function of a driver that declares no entry points (llmc_entry.request).

        ``peak_limit`` (with ``measure_memory``): bytes the call may add to the memory of the call's process
        tree; the watchdog kills the tree as soon as it is exceeded, so a call that materialises what it must
        not fails fast. ``result_bound``: the largest result frame accepted (default: 64 MiB or four times
        the arrays passed in, whichever is larger).
        ``import_grace``: seconds spent importing the submission that do not count against ``timeout``.
        """
        driver, function = llmc_entry.request(function, self.challenge)  # ValueError: the grader's fault
        key = str(self.challenge_dir.resolve())
        if key in _IMPORT_FAILURES:
            earlier = _IMPORT_FAILURES[key]
            # the same one-line reason as the first time, so that verdicts do not depend on test order (-n 2)
            raise GradingFailure(
                earlier.category,
                earlier.reason,
                f"(seen at import in an earlier test; not run again)\n{earlier.detail}",
            )
        mode = self.isolation if self.isolation in isolation.MODES else "auto"
        host = None if mode == "off" else isolation.probe()
        if mode == "strict" and host is not None and not host.full:
            raise IsolationUnavailable(f"--llm-isolation=strict refuses to grade: {isolation.describe()}")
        request = {
            "challenge": driver,
            "function": function,
            "args": tuple(args),
            "kwargs": kwargs,
            "measure_memory": measure_memory,
            "seed": self.seed,
            "grader_dir": str(PACKAGE_DIR),
            "confine": self.confine and os.environ.get("LLMC_CONFINE", "1") != "0",
        }
        limit = self.override_timeout or timeout or self.timeout
        memory_limit = memory_limit or self.memory_limit
        cgroup = None
        if host is not None and host.cgroup:
            with contextlib.suppress(OSError):
                cgroup = isolation.CallCgroup(host.cgroup, memory_limit + max(64 << 20, memory_limit // 4))
        bound = result_bound or max(MIN_RESULT_BOUND, 4 * _array_bytes((args, kwargs)))
        work = None
        plan: dict | None
        try:
            cuda_opt_out = not self.confine and os.environ.get("LLMC_CUDA_NAMESPACES", "1") == "0"
            if host is not None and host.namespaces and not cuda_opt_out:
                procs = cgroup.procs if cgroup else []
                plan = isolation.plan(self.challenge_dir, memory_limit, not self.confine, procs)
                request["writable"] = ["/tmp", "/dev/shm", llmc_isolate.ROOT_IN]
                env = _child_env(llmc_isolate.ROOT_IN + "/home", "/tmp")
                cwd, skipped = Path("/"), []
            else:
                work = Path(tempfile.mkdtemp(prefix="llmc-"))
                skipped = llmc_isolate.safe_copy(str(self.challenge_dir), str(work / "sub"))
                self._skipped(skipped)
                for d in ("tmp", "home"):
                    (work / d).mkdir()
                request["writable"] = [str(work)]
                if host is not None:
                    request["readable"] = [*isolation.readable_paths(), "/proc", "/sys/devices/system/cpu"]
                env = _child_env(str(work / "home"), str(work / "tmp"))
                plan = {"cgroups": cgroup.procs} if cgroup else None
                cwd = work / "sub"
            registry.open_driver(self.challenge, request, plan)  # its challenge's driver folders, only those
            return self._run_in(
                cwd, env, plan, request, limit, memory_limit, peak_limit, cgroup, bound, skipped, import_grace
            )
        except GradingFailure as failure:
            if getattr(failure, "phase", "") == "import" and failure.category in ("timeout", "crash", "memory"):
                _IMPORT_FAILURES[key] = failure
            raise
        finally:
            if cgroup is not None:
                cgroup.remove()
            if work is not None:
                _remove(work)

    def _run_in(
        self,
        cwd: Path,
        env: dict[str, str],
        plan: dict | None,
        request: dict,
        timeout: float,
        memory_limit: int,
        peak_limit: int | None,
        cgroup: isolation.CallCgroup | None,
        bound: int,
        skipped: list[str],
        grace: float = 0.0,
    ) -> CallResult:
        starter = launcher.launcher(env)
        child = starter.launch(cwd, env, plan)
        output = _OutputTail(child.stdout)
        with contextlib.suppress(OSError):
            Path(f"/proc/{child.pid}/oom_score_adj").write_text("1000")
        watch = _Meter(child.pid, cgroup, isolated=bool(plan and "mountpoint" in plan))
        try:
            result = self._supervise(child, output, request, timeout, memory_limit, peak_limit, watch, bound, grace)
            result.skipped = sorted(set(skipped) | set(result.skipped))
            self._skipped(result.skipped)
            return result
        finally:
            if cgroup is not None:
                cgroup.kill()
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
        meter: _Meter,
        bound: int,
        grace: float = 0.0,
    ) -> CallResult:
        phase, confinement, skipped, peak = "start", "", [], None
        seen: set[str] = set()  # each protocol event counts once: a child that repeats one moves nothing
        imported = 0.0  # time spent importing the submission, up to ``grace``, extends the deadline
        import_since: float | None = None
        r_res, w_req = proc.r_res, proc.w_req
        marks: list[dict[str, float]] = []
        with contextlib.suppress(BrokenPipeError):  # a child that died at start-up is judged below
            llmc_wire.write_frame(w_req, request)
        os.set_blocking(r_res, False)
        reader = llmc_wire.FrameReader(bound)
        # the child's own start-up (isolation, the copy of the folder) is not the submission's time: the clock
        # starts again when trusted code reports the call confined, and a start-up has at most SETUP_SECONDS
        deadline = time.monotonic() + timeout + SETUP_SECONDS

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
                    if meter.cgroup is not None and meter.cgroup.oom_killed():
                        raise fail(
                            "memory",
                            f"the process tree went over the kernel's memory cap for the call "
                            f"({memory_limit / 2**20:.0f} MiB and a margin); killed",
                        )
                    if code is None:
                        raise fail("crash", "the child closed its result pipe without exiting")
                    if code == llmc_isolate.FAILED and phase == "start":
                        raise RuntimeError(f"the sandbox could not isolate the call: {output.text()[-2000:]}")
                    where = " while importing the submission" if phase == "import" else ""
                    raise fail("crash", _describe_exit(code) + where)
                if data != b"?":
                    try:
                        reader.feed(data)
                        messages = reader.frames()
                    except llmc_wire.FrameTooLarge as exc:
                        raise fail(
                            "memory",
                            f"the child sent a result of {exc.length / 2**20:.1f} MiB, over the bound of "
                            f"{exc.limit / 2**20:.1f} MiB for this test; refused before reading it",
                        ) from None
                    except llmc_wire.WireError as exc:
                        raise fail("crash", f"the child wrote a malformed result frame ({exc})") from None
                    for msg in messages:
                        if not isinstance(msg, dict):
                            continue
                        event = msg.get("event")
                        first = event not in seen
                        seen.add(str(event))
                        if event == "confined" and first:
                            deadline = time.monotonic() + timeout + 0.5
                            confinement = str(msg.get("status"))
                            skipped = [str(x) for x in msg.get("skipped", [])][:100]
                            self._skipped(skipped)
                        elif event == "phase":
                            if import_since:
                                imported += time.monotonic() - import_since
                            phase = str(msg.get("phase"))
                            import_since = time.monotonic() if phase == "import" else None
                        elif event == "ready" and first:
                            if request["measure_memory"]:
                                meter.start()
                            llmc_wire.write_frame(w_req, "go")
                        elif event == "done" and "ready" in seen and "done:answered" not in seen:
                            seen.add("done:answered")  # answered once, and only after "ready", as the driver expects
                            llmc_wire.write_frame(w_req, "send")  # the measurement goes on until the result
                        elif event == "mark":  # timed here, where the submission cannot reach the clock
                            got = time.perf_counter()
                            extra = meter.extra() if meter.measuring else 0
                            meter.start()  # the next repetition's peak counts from here
                            marks.append({"recv": got, "peak": float(extra), "go": time.perf_counter()})
                            llmc_wire.write_frame(w_req, "go")
                        elif event == "result":
                            if meter.measuring:
                                peak = meter.peak()
                            processes.kill_tree(proc.pid)  # done: closing its output lets the tail be read at once
                            result = self._finish(msg, output, peak, confinement, fail)
                            result.skipped = skipped
                            result.marks = marks
                            result.cpu_seconds = meter.cgroup.cpu_seconds() if meter.cgroup else None
                            return result
            meter.sample()
            if meter.measuring and peak_limit is not None:
                extra = meter.extra()
                if extra > peak_limit:
                    raise fail(
                        "memory",
                        f"the call's peak memory went over its bound of {peak_limit / 2**20:.1f} MiB (measured "
                        "from outside the child); process tree killed",
                        f"peak so far: {extra / 2**20:.1f} MiB above the memory before the call ({meter.source})",
                    )
            used = meter.usage()
            if used > memory_limit:
                raise fail(
                    "memory",
                    f"resident memory went over the {memory_limit / 2**20:.0f} MiB cap; process tree killed",
                    f"memory of the process tree: {used / 2**20:.0f} MiB ({meter.source})",
                )

    @staticmethod
    def _finish(msg: dict, output: _OutputTail, peak: int | None, confinement: str, fail: Any) -> CallResult:
        if not msg.get("ok"):
            category = str(msg.get("category", "error"))
            if category not in ("error", "crash", "timeout", "memory", "interface", "compile", "grader"):
                category = "error"
            if category == "interface" and msg.get("not_driven") is True:
                category = "not_driven"  # no attempt could drive the answer (the probe rule, llmc_probe)
            raise fail(category, str(msg.get("message", ""))[:4000], str(msg.get("detail", ""))[:4000])
        return CallResult(
            value=msg.get("value"),
            seconds=float(msg.get("seconds", 0.0)),
            imports=[str(m) for m in msg.get("imports", [])],
            output=output.text(eof=False),
            peak_bytes=peak,
            attribution=msg.get("attribution"),
            confinement=confinement,
        )
