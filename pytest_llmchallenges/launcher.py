"""Starting sandboxed children: through a fork server (fast, the default on Linux) or by spawning.

Both give the sandbox the same thing: a child running ``llmc_boot.serve`` in its own session, its cwd and
environment set (or isolated by ``llmc_isolate``, given a plan), with a request pipe, a result pipe and one
stdout+stderr pipe. ``LLMC_SANDBOX=spawn``
forces a fresh interpreter per call (slower; useful to rule the fork server out when debugging).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import processes
from .child import llmc_confine

CHILD_DIR = Path(__file__).resolve().parent / "child"
BOOT = CHILD_DIR / "llmc_boot.py"
ZYGOTE = CHILD_DIR / "llmc_zygote.py"


@dataclass
class Launched:
    pid: int
    stdout: IO[bytes]
    w_req: int
    r_res: int
    launcher: Any

    def exit_code(self, timeout: float) -> int | None:
        return self.launcher.exit_code(self, timeout)

    def others(self) -> list[int]:
        """Processes the launcher holds beyond this child (orphans to kill after the call)."""
        return self.launcher.others(self)


class Spawner:
    """One fresh interpreter per call."""

    def __init__(self) -> None:
        llmc_confine.become_subreaper()  # orphans of spawned children come to us, to be found and reaped
        self._procs: dict[int, subprocess.Popen] = {}
        self._known = set(processes.children(os.getpid()))

    def launch(self, cwd: Path, env: dict[str, str], plan: dict | None = None) -> Launched:
        r_req, w_req = os.pipe()
        r_res, w_res = os.pipe()
        if plan is not None:
            env = {**env, "LLMC_ISOLATE": json.dumps(plan)}
        self._known = set(processes.children(os.getpid()))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-X", "faulthandler", str(BOOT), str(r_req), str(w_res)],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(r_req, w_res),
                start_new_session=True,
            )
        finally:
            os.close(r_req)
            os.close(w_res)
        self._procs[proc.pid] = proc
        assert proc.stdout is not None
        return Launched(proc.pid, proc.stdout, w_req, r_res, self)

    def exit_code(self, child: Launched, timeout: float) -> int | None:
        try:
            return self._procs[child.pid].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def others(self, child: Launched) -> list[int]:
        return [p for p in processes.children(os.getpid()) if p not in self._known and p != child.pid]

    def forget(self, child: Launched) -> None:
        proc = self._procs.pop(child.pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for p in self.others(child):  # orphans re-parented to us (we are a subreaper)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p, 0)


class ForkServer:
    """A warm zygote process that forks one child per call (see child/llmc_zygote.py)."""

    def __init__(self, env: dict[str, str]) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = parent_end
        self._proc = subprocess.Popen(
            [sys.executable, "-P", str(ZYGOTE), str(child_end.fileno())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(child_end.fileno(),),
            start_new_session=True,
        )
        child_end.close()
        self._exits: dict[int, int] = {}
        self._forgotten: set[int] = set()
        atexit.register(self.close)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _receive(self, timeout: float) -> dict | None:
        self._sock.settimeout(max(timeout, 0.0))
        try:
            data = self._sock.recv(1 << 16)
        except (TimeoutError, BlockingIOError):
            return None
        if not data:
            raise ConnectionError("the sandbox fork server exited")
        msg = json.loads(data)
        if "exit" in msg:
            pid = int(msg["exit"])
            if pid in self._forgotten:
                self._forgotten.discard(pid)
            else:
                self._exits[pid] = int(msg["code"])
        return msg

    def launch(self, cwd: Path, env: dict[str, str], plan: dict | None = None) -> Launched:
        r_req, w_req = os.pipe()
        r_res, w_res = os.pipe()
        r_out, w_out = os.pipe()
        order = json.dumps({"cwd": str(cwd), "env": env, "isolate": plan}).encode()
        try:
            socket.send_fds(self._sock, [order], [r_req, w_res, w_out])
        finally:
            for fd in (r_req, w_res, w_out):
                os.close(fd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = self._receive(deadline - time.monotonic())
            if msg and "started" in msg:
                return Launched(int(msg["started"]), os.fdopen(r_out, "rb", buffering=0), w_req, r_res, self)
        raise ConnectionError("the sandbox fork server did not start a child")

    def exit_code(self, child: Launched, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while child.pid not in self._exits:
            left = deadline - time.monotonic()
            if left <= 0 or (self._receive(min(left, 0.05)) is None and time.monotonic() >= deadline):
                return None
        return self._exits[child.pid]

    def others(self, child: Launched) -> list[int]:
        return [p for p in processes.children(self._proc.pid) if p != child.pid]

    def forget(self, child: Launched) -> None:
        """Drop a killed child without waiting for its exit (an isolated call's namespaces take a while to
        tear down; the kernel does that while the next call starts, and the zygote reaps it)."""
        if self._exits.pop(child.pid, None) is None:
            self._forgotten.add(child.pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self._proc.wait(2)
        if self._proc.poll() is None:
            self._proc.kill()


_LAUNCHER: list[Spawner | ForkServer] = []


def launcher(env: dict[str, str]) -> Spawner | ForkServer:
    """The process-wide launcher: a fork server unless unavailable or LLMC_SANDBOX=spawn."""
    current = _LAUNCHER[0] if _LAUNCHER else None
    if isinstance(current, ForkServer) and not current.alive:
        current = None
    if current is None:
        if os.environ.get("LLMC_SANDBOX", "fork") == "spawn" or not hasattr(socket, "send_fds"):
            current = Spawner()
        else:
            try:
                current = ForkServer(env)
            except OSError:
                current = Spawner()
        _LAUNCHER[:] = [current]
    return current
