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
from typing import Any

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


def _unexpected(exc: Exception, workdir: str, driver_found: bool) -> dict:
    """An exception no driver turned into a verdict: raised in the submission's files (``error``), by the
    grader's lookup of its own driver function (``grader``), or by the driver while using what the submission
    gave it (``interface``)."""
    import traceback

    detail = "".join(traceback.format_exception(exc)[-3:])[-2000:]
    text = f"{type(exc).__name__}: {exc}"
    mine = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(workdir + os.sep)]
    if mine:
        where = f"{os.path.relpath(mine[-1].filename, workdir)}:{mine[-1].lineno}"
        category, message = "error", f"raised {text} (at {where})"
    elif not driver_found:
        category, message = "grader", f"the grader's driver function cannot be loaded: {text}"
    else:
        category, message = "interface", f"could not use the submission's objects or output: {text}"
    return {"event": "result", "ok": False, "category": category, "message": message[:2000], "detail": detail}


DEV_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def start(fd_in: int, fd_out: int, cwd: str, env: dict[str, str], plan: dict | None) -> None:
    """Set up the process for one call (environment, isolation or temp folder), then serve it."""
    os.environ.clear()  # an allowlist built by the grader, not what the fork server happened to inherit
    os.environ.update(env)
    skipped: list[str] = []
    import llmc_isolate

    if plan is not None and "mountpoint" not in plan:
        llmc_isolate.join_cgroups(plan)
        plan = None
    if plan is not None:
        skipped = llmc_isolate.enter(plan)
        sys.path[:] = [llmc_isolate.TOOLKIT_IN if p == HERE else p for p in sys.path]
    else:
        os.chdir(cwd)
    serve(fd_in, fd_out, plan is not None, skipped)


def serve(fd_in: int, fd_out: int, isolated: bool = False, skipped: list[str] | None = None) -> None:
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
    import llmc_entry
    import numpy as np

    workdir = os.getcwd()
    sys.path.append(workdir)  # `from model import X` between the submission's files; last, so it shadows nothing
    writable = list(request["writable"])
    here = sys.path[0] if isolated else HERE
    drivers = list(request.get("driver_paths", []))  # the call's challenge driver folders (registry.open_driver)
    sys.path[1:1] = drivers
    if not request.get("confine", True):
        status = "landlock off for this call (audit-hook write guard only)"
    elif isolated:
        status = llmc_confine.landlock(writable, readable=["/"], write_files=DEV_FILES)
    else:
        readable = request.get("readable")
        status = llmc_confine.landlock(writable, readable=readable and [*readable, here], write_files=DEV_FILES)
    imported = llmc_confine.install_audit_hook(
        [request["grader_dir"], *request.get("hidden", [])],
        [here, *drivers],
        [*writable, "/dev"],
        guard_writes=not status.startswith("landlock abi"),
    )
    llmc_confine.become_subreaper()
    send({"event": "confined", "status": ("namespaces, " if isolated else "") + status, "skipped": skipped or []})

    seed = int(request.get("seed", 0))
    random.seed(seed)
    np.random.seed(seed % 2**32)

    measure = bool(request.get("measure_memory"))
    sampler_stop = threading.Event()
    found: dict[str, Any] = {}
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

    def mark() -> None:  # a lap boundary, time-stamped by the parent (efficiency timing); waits for its "go"
        send({"event": "mark"})
        if llmc_wire.read_frame(fd_in) != "go":
            os._exit(70)

    result: dict
    try:
        driver = __import__(llmc_entry.module_of(request["challenge"]))
        fn = getattr(driver, request["function"])
        sub = llmc_api.Answer(__import__("pathlib").Path(workdir), getattr(driver, "ROLES", {}), ready)
        sub.on_phase = phase
        sub.mark = mark  # type: ignore[attr-defined]
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
    except Exception as exc:  # the traceback decides whose exception it is
        result = _unexpected(exc, workdir, driver_found="fn" in locals())
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
    _plan = os.environ.pop("LLMC_ISOLATE", "")  # the spawn path: the plan travels in the environment
    start(int(sys.argv[1]), int(sys.argv[2]), os.getcwd(), dict(os.environ), __import__("json").loads(_plan or "null"))
