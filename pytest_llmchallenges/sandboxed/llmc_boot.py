"""Entry point of a sandboxed child: ``python -P llmc_boot.py FD_IN FD_OUT``.

Reads one request, confines itself, runs one driver function against the submission in the current folder,
and writes the result as a frame. The parent decides every verdict; this side only reports what happened.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import llmc_wire  # noqa: E402


def _memory_sampler(root: str, stop: threading.Event, found: dict) -> None:
    """While the call runs, note where the largest live allocation was made (attribution, not the verdict)."""
    import tracemalloc

    best = 0
    while not stop.wait(0.005):
        if not tracemalloc.is_tracing():
            found["stopped"] = True
            return
        current, _ = tracemalloc.get_traced_memory()
        if current > max(best * 1.2, 1 << 20):
            best = current
            stats = tracemalloc.take_snapshot().statistics("traceback")
            if stats:
                top = stats[0]
                frames = [f for f in top.traceback if f.filename.startswith(root)] or list(top.traceback)
                f = frames[-1]
                where = os.path.relpath(f.filename, root) if f.filename.startswith(root) else f.filename
                found["top"] = (top.size, f"{where}:{f.lineno}")


def serve(fd_in: int, fd_out: int) -> None:
    """Serve one call on these pipe ends, then wait to be killed (never returns normally)."""
    os.set_inheritable(fd_in, False)
    os.set_inheritable(fd_out, False)
    request = llmc_wire.read_frame(fd_in)
    assert isinstance(request, dict)

    def send(msg: dict) -> None:
        llmc_wire.write_frame(fd_out, msg)

    import random

    import llmc_api
    import llmc_confine
    import numpy as np

    workdir = os.getcwd()
    sys.path.append(workdir)  # `from model import X` between the submission's files; last, so it shadows nothing
    writable = list(request["writable"])
    status = (
        llmc_confine.landlock([*writable, "/dev"])
        if request.get("confine", True)
        else "landlock off for this call (audit-hook write guard only)"
    )
    imported = llmc_confine.install_audit_hook(
        request["grader_dir"], HERE, [*writable, "/dev"], guard_writes=not status.startswith("landlock abi")
    )
    llmc_confine.become_subreaper()
    send({"event": "confined", "status": status})

    seed = int(request.get("seed", 0))
    random.seed(seed)
    np.random.seed(seed % 2**32)

    measure = bool(request.get("measure_memory"))
    sampler_stop, found = threading.Event(), {}
    sampler: list[threading.Thread] = []

    def ready() -> None:
        if not measure:
            return
        send({"event": "ready"})
        if llmc_wire.read_frame(fd_in) != "go":
            os._exit(70)
        import tracemalloc

        tracemalloc.start(16)
        t = threading.Thread(target=_memory_sampler, args=(workdir, sampler_stop, found), daemon=True)
        t.start()
        sampler.append(t)

    def phase(name: str) -> None:
        send({"event": "phase", "phase": name})

    result: dict
    try:
        driver = __import__("llmc_drive_" + request["challenge"])
        fn = getattr(driver, request["function"])
        sub = llmc_api.Submission(__import__("pathlib").Path(workdir), getattr(driver, "ROLES", {}), ready)
        sub.on_phase = phase
        start = time.perf_counter()
        value = fn(sub, *request.get("args", ()), **request.get("kwargs", {}))
        seconds = time.perf_counter() - start
        sub.ready()  # a driver that never declared readiness still gets measured
        result = {"event": "result", "ok": True, "value": value, "seconds": seconds}
    except llmc_api.InterfaceError as exc:  # not_driven: no attempt could drive the answer (llmc_probe)
        result = {"event": "result", "ok": False, "category": "interface", "message": str(exc)}
        result["not_driven"] = exc.not_driven
    except llmc_api.SubmissionError as exc:
        result = {"event": "result", "ok": False, "category": exc.category, "message": str(exc), "detail": exc.detail}
    except llmc_api.SubmissionExit as exc:
        result = {
            "event": "result",
            "ok": False,
            "category": "crash",
            "message": str(exc),
            "phase": "import" if "importing" in str(exc) else "call",
        }
    except SystemExit as exc:
        result = {"event": "result", "ok": False, "category": "crash", "message": f"sys.exit({exc.code!r}) called"}
    except MemoryError:
        result = {"event": "result", "ok": False, "category": "memory", "message": "MemoryError raised"}
    except Exception as exc:  # the driver could not make sense of what the submission gave back
        import traceback

        result = {
            "event": "result",
            "ok": False,
            "category": "interface",
            "message": f"could not use the submission's objects or output: {type(exc).__name__}: {exc}"[:2000],
            "detail": "".join(traceback.format_exception(exc)[-3:])[-2000:],
        }
    if measure:
        sampler_stop.set()
        for t in sampler:
            t.join(1.0)
        if sampler and not __import__("tracemalloc").is_tracing():
            found["stopped"] = True
        send({"event": "done"})
        if llmc_wire.read_frame(fd_in) != "send":
            os._exit(70)
        if found.get("stopped"):
            result["attribution"] = "tracemalloc was stopped by the submission during the call"
        elif "top" in found:
            size, where = found["top"]
            result["attribution"] = f"largest live allocation: {size / 2**20:.1f} MiB at {where}"
    result["imports"] = sorted(
        m for m in imported if m not in sys.stdlib_module_names and not m.startswith(("llmc_", "_"))
    )
    try:
        send(result)
    except llmc_wire.WireError as exc:
        send(
            {
                "event": "result",
                "ok": False,
                "category": "interface",
                "message": f"returned a value that cannot be graded: {exc}",
                "imports": sorted(imported),
            }
        )
    with contextlib.suppress(BaseException):  # wait to be killed: the parent first removes what was left running
        llmc_wire.read_frame(fd_in)
    os._exit(0)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
