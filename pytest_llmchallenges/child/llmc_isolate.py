"""Operating-system isolation of one sandboxed call, applied by trusted code before any submission code runs.

The fork server's child calls ``enter(plan)``: it joins the call's cgroups, unshares user, mount, pid, network,
IPC and UTS namespaces, and forks. The process it forks is pid 1 of the call: it builds a fresh root on a
size-limited tmpfs, with only the plan's readable paths bound read-only, a private ``/tmp``, ``/dev/shm`` and
a copy of the submission folder, a minimal ``/dev`` and a fresh ``/proc``; it pivots into it and forks the
process that serves the call, after dropping every capability. Everything the call wrote lives on tmpfs
mounts of a mount namespace that dies with the call, so nothing persists and nothing needs cleaning up.

The outer process stays behind in the grader's namespaces only to wait and report pid 1's end as its own.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import stat
import sys

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}.get(platform.machine())
ROOT_IN = "/llmc"  # where the call's writable folder lives inside the sandbox
SUB_IN = ROOT_IN + "/sub"
TOOLKIT_IN = ROOT_IN + "/toolkit"  # the child-side toolkit (this folder), bound read-only (the grader's package is not)
CHALLENGE_DRIVERS_IN = ROOT_IN + "/drivers"  # the call's challenge driver folders, bound read-only as 0, 1, ...
DEVICES = ("null", "zero", "random", "urandom", "full")
COPY_LIMIT_BYTES = 512 << 20
COPY_LIMIT_FILES = 20_000
FAILED = 71  # exit status of a call whose isolation could not be set up (a grader problem, not a verdict)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.syscall.restype = ctypes.c_long


class IsolationError(OSError):
    """A step of the isolation failed; the call must not run."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {dst}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def safe_copy(src: str, dst: str) -> list[str]:
    """Copy a submission folder without following links out of it or opening FIFOs, sockets or devices.

    Returns the skipped entries (relative paths, with why). Bounded in bytes and files; regular files are
    opened with O_NOFOLLOW | O_NONBLOCK and checked with fstat, so that a swap after the listing changes nothing.
    """
    skipped: list[str] = []
    total, files = 0, 0
    root = os.path.realpath(src)
    os.makedirs(dst, exist_ok=True)
    for here, dirs, names in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(here, root)
        out_dir = os.path.normpath(os.path.join(dst, rel_dir))
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in [*dirs, *names]:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            path, out = os.path.join(here, name), os.path.join(out_dir, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(out, 0o755)
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                inside = os.path.realpath(os.path.join(here, target))
                if os.path.isabs(target) or not (inside == root or inside.startswith(root + os.sep)):
                    skipped.append(f"{rel} (a link out of the folder)")
                else:
                    os.symlink(target, out)
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel} (not a regular file)")
            elif st.st_nlink > 1:
                skipped.append(f"{rel} (a hard link: the file has other names outside the folder)")
            elif total + st.st_size > COPY_LIMIT_BYTES or files >= COPY_LIMIT_FILES:
                skipped.append(f"{rel} (over the copy limit of {COPY_LIMIT_BYTES >> 20} MiB, {COPY_LIMIT_FILES} files)")
            else:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    skipped.append(f"{rel} (unreadable)")
                    continue
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        skipped.append(f"{rel} (not a regular file)")
                        continue
                    with open(out, "wb") as w, os.fdopen(fd, "rb", closefd=False) as r:
                        left = COPY_LIMIT_BYTES - total
                        while chunk := r.read(min(1 << 20, left + 1)):
                            total += len(chunk)
                            if total > COPY_LIMIT_BYTES:
                                break
                            w.write(chunk)
                            left -= len(chunk)
                    os.chmod(out, (st.st_mode & 0o777) | 0o600)
                    files += 1
                finally:
                    os.close(fd)
    return skipped


def _bind(path: str, root: str, writable: bool = False) -> None:
    inside = root + path
    if os.path.islink(path) and os.path.dirname(path) == "/":
        os.symlink(os.readlink(path), inside)  # /lib -> usr/lib on merged-usr systems
        return
    if not os.path.lexists(inside):
        if os.path.isdir(path):
            os.makedirs(inside, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), exist_ok=True)
            os.close(os.open(inside, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(path, inside, None, _MS_BIND | _MS_REC)
    flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | (0 if writable else _MS_RDONLY)
    try:
        _mount(None, inside, None, flags)
    except IsolationError:  # mount flags locked by a more privileged namespace: keep theirs, add read-only
        _mount(None, inside, None, flags | _MS_NODEV)


def _build_root(plan: dict, skipped: list[str]) -> None:
    """In the new mount namespace: a fresh root on tmpfs, readable paths bound read-only, then pivot into it."""
    root = plan["mountpoint"]
    sizes = plan["sizes"]
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=8m,nr_inodes=8192,mode=755")
    for d in ("tmp", "dev", "proc", "etc", "llmc", ".old"):
        os.mkdir(f"{root}/{d}", 0o755)
    os.chmod(f"{root}/tmp", 0o1777)
    # the writable areas come first: a readable path beneath /tmp (a clone in /tmp) is bound on top of them
    limits = f"size={sizes['bytes']},nr_inodes={sizes['inodes']}"
    _mount("tmpfs", f"{root}/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, limits + ",mode=1777")
    _mount("tmpfs", f"{root}{ROOT_IN}", "tmpfs", _MS_NOSUID | _MS_NODEV, limits + ",mode=755")
    os.mkdir(f"{root}/dev/shm")
    _mount("tmpfs", f"{root}/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, limits + ",mode=1777")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", root, writable=True)
    for extra in plan.get("devices", []):
        if os.path.exists(extra):
            _bind(extra, root, writable=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, f"{root}/dev/{name}")
    os.symlink("/proc/self/fd/2", f"{root}/dev/stderr")
    for path in plan["readable"]:
        if os.path.lexists(path):
            _bind(path, root)
    for path in plan["hidden"]:
        if os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,nr_inodes=1")
    drivers = [(d, f"{CHALLENGE_DRIVERS_IN}/{i}") for i, d in enumerate(plan.get("challenge_drivers", []))]
    for source, inside in [(plan["toolkit"], TOOLKIT_IN), *drivers]:
        driver = f"{root}{inside}"
        os.makedirs(driver, 0o755)
        _mount(source, driver, None, _MS_BIND)
        _mount(None, driver, None, _MS_BIND | _MS_REMOUNT | _MS_NOSUID | _MS_RDONLY)
    with open(f"{root}/etc/passwd", "w") as f:
        f.write(f"sandbox:x:0:0:sandbox:{ROOT_IN}/home:/bin/sh\n")
    with open(f"{root}/etc/group", "w") as f:
        f.write("sandbox:x:0:\n")
    os.mkdir(f"{root}{ROOT_IN}/home", 0o755)
    skipped += safe_copy(plan["source"], f"{root}{SUB_IN}")
    # this pid namespace's own /proc, mounted while the host's is still visible (the kernel requires one), and
    # read-only: the call's root is the grader's user mapped, and as root /proc/sys would otherwise accept
    # writes without any capability
    _mount("proc", f"{root}/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_RDONLY)
    os.chdir(root)
    if _PIVOT_ROOT is None:
        raise IsolationError(0, f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(_PIVOT_ROOT, b".", b".old"), "pivot_root")
    os.chroot(".")
    _check(_libc.umount2(b"/.old", _MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir(SUB_IN)


def drop_privileges() -> None:
    """No capability left, none to regain through execve (empty bounding set)."""
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")


def _wait(pid: int) -> int:
    """Wait for ``pid``, reaping any orphan meanwhile; its wait status."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 70 << 8
        if got == pid:
            return status


def _end_like(status: int) -> None:
    """End this process the way a process with this wait status ended (pid 1 of a namespace cannot signal
    itself, so it passes the status on and the outer process, which can, mirrors it)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        __import__("resource").setrlimit(__import__("resource").RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def join_cgroups(plan: dict) -> None:
    """Move this process into the call's cgroups: all it starts is counted, capped and killed with it."""
    for procs in plan.get("cgroups", []):
        _write(procs, str(os.getpid()))


def enter(plan: dict) -> list[str]:
    """Isolate the calling process (see the module docstring). Returns, in the process that will serve the
    call, the entries of the submission folder that were not copied; the other processes never return."""
    join_cgroups(plan)
    uid, gid = os.geteuid(), os.getegid()
    _check(
        _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS),
        "unshare",
    )
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    r_status, w_status = os.pipe()
    init = os.fork()
    if init:
        os.close(w_status)
        status = _wait(init)
        reported = os.read(r_status, 32)
        _end_like(int(reported) if reported.strip().isdigit() else status)
    # pid 1 of the call: build the root, then serve in a child so that pid 1's signal rules do not apply to it
    skipped: list[str] = []
    try:
        _build_root(plan, skipped)
        __import__("socket").sethostname("sandbox")
    except Exception as exc:  # reported on stderr, which the grader keeps
        sys.stderr.write(f"llmc sandbox: isolation failed: {exc}\n")
        sys.stderr.flush()
        os._exit(FAILED)
    os.close(r_status)
    server = os.fork()
    if server:
        os.write(w_status, str(_wait(server)).encode())
        os._exit(0)
    os.close(w_status)
    drop_privileges()
    return skipped
