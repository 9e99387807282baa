"""A fork server for sandboxed calls: ``python -P llmc_zygote.py SOCKET_FD``.

Starting an interpreter and importing NumPy costs a few hundred milliseconds, paid on every call. The
zygote pays it once: it imports what every call needs, then forks one child per call. The child is a fresh
process all the same (own session, own temp folder, its own Landlock domain); the zygote itself never runs
submission code, so nothing a submission does can reach the next call.

Protocol on a SOCK_SEQPACKET socket: the parent sends {"cwd", "env", "isolate"} with three file descriptors (request
pipe, result pipe, output pipe) and gets back {"started": pid}; when a child exits the zygote sends
{"exit": pid, "code": exit code or -signal}.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import llmc_api  # noqa: E402, F401
import llmc_boot  # noqa: E402
import llmc_confine  # noqa: E402
import llmc_isolate  # noqa: E402, F401
import llmc_wire  # noqa: E402, F401
import numpy  # noqa: E402, F401  (the point of the zygote: imported once)


def _child(sock: socket.socket, request: dict, fds: list[int]) -> None:
    try:
        sock.close()
        os.setsid()
        r_req, w_res, w_out = fds
        os.dup2(w_out, 1)
        os.dup2(w_out, 2)
        os.close(w_out)
        import faulthandler

        faulthandler.enable()
        llmc_boot.start(r_req, w_res, request["cwd"], request["env"], request.get("isolate"))
    finally:
        os._exit(0)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    llmc_confine.become_subreaper()  # orphans of finished calls come here, to be reaped
    __import__("ctypes").CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG: die with the grading process
    try:
        _serve(sock)
    except (BrokenPipeError, ConnectionResetError):  # the parent went away, with exit reports it no longer wants
        return


def _serve(sock: socket.socket) -> None:
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([sock], [], [], 0.02)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in children:
                children.discard(pid)
                sock.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
        if not ready:
            continue
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not msg:
            return  # the parent went away
        request = json.loads(msg)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(sock, request, fds)
        for fd in fds:
            os.close(fd)
        children.add(pid)
        sock.send(json.dumps({"started": pid}).encode())


if __name__ == "__main__":
    main()
