"""Confinement the child applies to itself before any submission code runs.

- Landlock (Linux >= 5.13, unprivileged): filesystem writes only beneath the call's temp folder and /dev,
  no TCP, and (ABI >= 6) no signals to processes outside the sandbox. Inherited by every process the
  submission starts, and irreversible: ctypes or a shell cannot undo it.
- An audit hook (irremovable too): the grader's package cannot be imported or opened; every import is
  recorded (framework checks); where Landlock is missing, writes outside the temp folder are refused at the
  Python level, which is best-effort only.
- The child is made a subreaper, so that processes the submission daemonises stay its descendants and are
  found and killed after the call.
"""

from __future__ import annotations

import ctypes
import os
import sys

_LANDLOCK_WRITE_FS = (
    (1 << 1)  # WRITE_FILE
    | (1 << 4)  # REMOVE_DIR
    | (1 << 5)  # REMOVE_FILE
    | (1 << 6)  # MAKE_CHAR
    | (1 << 7)  # MAKE_DIR
    | (1 << 8)  # MAKE_REG
    | (1 << 9)  # MAKE_SOCK
    | (1 << 10)  # MAKE_FIFO
    | (1 << 11)  # MAKE_BLOCK
    | (1 << 12)  # MAKE_SYM
)
_REFER, _TRUNCATE = 1 << 13, 1 << 14
_NET_BIND, _NET_CONNECT = 1 << 0, 1 << 1
_READ_FS = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE, READ_FILE, READ_DIR
_SCOPE_ABSTRACT, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # same numbers on x86-64 and arm64
_PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 38, 36

_WRITE_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return max(0, int(libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def landlock(
    writable: list[str],
    *,
    readable: list[str] | None = None,
    write_files: tuple[str, ...] = (),
    deny_tcp: bool = True,
    scope_signals: bool = True,
) -> str:
    """Confine writes to ``writable`` folders (and ``write_files``), reads to ``readable`` plus those (when
    given), and (where the kernel's ABI has them) deny TCP, abstract unix sockets and signals out of the
    sandbox; returns a short status ("landlock abi 7" or why not). The switches exist for
    bench/landlock_cuda_probe.py, which looks for the restriction the CUDA runtime trips over."""
    if not sys.platform.startswith("linux"):
        return "unavailable (not Linux)"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = landlock_abi()
    if abi < 1:
        return f"unavailable (errno {ctypes.get_errno()})"
    write = _LANDLOCK_WRITE_FS | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    read = _READ_FS if readable is not None else 0
    fs = write | read
    net = (_NET_BIND | _NET_CONNECT) if abi >= 4 and deny_tcp else 0
    scoped = (_SCOPE_SIGNAL if scope_signals else 0) | (_SCOPE_ABSTRACT if readable is not None else 0)
    attr = _RulesetAttr(fs, net, scoped if abi >= 6 else 0)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"unavailable (create_ruleset errno {ctypes.get_errno()})"
    file_rights = (1 << 1) | (read & (1 << 0 | 1 << 2)) | (_TRUNCATE if abi >= 3 else 0)
    rules = [(f, fs) for f in writable] + [(f, read) for f in readable or ()] + [(f, file_rights) for f in write_files]
    try:
        for folder, allowed in rules:
            try:
                fd = os.open(folder, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(folder):  # a file takes only the rights that apply to files
                    allowed &= (1 << 0) | (1 << 1) | (1 << 2) | _TRUNCATE | (1 << 15)
                rule = _PathBeneath(allowed, fd)
                if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), 0) < 0:
                    return f"unavailable (add_rule {folder} errno {ctypes.get_errno()})"
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "unavailable (no_new_privs refused)"
        if libc.syscall(_SYS_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            return f"unavailable (restrict_self errno {ctypes.get_errno()})"
    finally:
        os.close(ruleset)
    return f"landlock abi {abi}" + (" (reads too)" if read else "")


def become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f + os.sep) for f in folders)


def install_audit_hook(
    grader_dir: str | list[str], allowed_dir: str | list[str], writable: list[str], guard_writes: bool
) -> set[str]:
    """Block the grader's package (and registered challenges' packages) but for the allowed (driver) folders;
    record imports; optionally refuse writes outside ``writable``.

    Returns the live set of imported top-level module names.
    """
    imported: set[str] = set()
    grader = tuple(os.path.realpath(d) for d in ([grader_dir] if isinstance(grader_dir, str) else grader_dir))
    allowed = tuple(os.path.realpath(d) for d in ([allowed_dir] if isinstance(allowed_dir, str) else allowed_dir))
    write_ok = tuple(os.path.realpath(w) for w in writable)

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            top = str(args[0]).split(".")[0]
            if top == "pytest_llmchallenges":
                raise ImportError("the grader's package cannot be imported from inside the sandbox")
            imported.add(top)
        elif event == "open":
            path = args[0]
            if isinstance(path, int) or path is None:
                return
            real = os.path.realpath(os.fsdecode(path))
            if _under(real, grader) and not _under(real, allowed):
                raise PermissionError("the grader's files cannot be opened from inside the sandbox")
            if guard_writes:
                mode, flags = (args[1] or ""), (args[2] or 0)
                writing = any(c in str(mode) for c in "wax+") or (int(flags) & _WRITE_FLAGS)
                if writing and not _under(real, write_ok):
                    raise PermissionError(f"sandbox: writing outside the temp folder is refused: {real}")
        elif guard_writes and event in _WRITE_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)):
                    real = os.path.realpath(os.fsdecode(arg))
                    if not _under(real, write_ok):
                        raise PermissionError(f"sandbox: {event} outside the temp folder is refused: {real}")

    sys.addaudithook(hook)
    return imported
