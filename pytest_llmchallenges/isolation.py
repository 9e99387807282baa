"""What the host lets the sandbox use, and the grader-side half of each call's isolation.

Three mechanisms, each optional: namespaces (user, mount, pid, net, ipc, uts: what the child may read, reach
and signal), Landlock (the same limits again, enforced by a second kernel mechanism), and a cgroup per call
(memory and pids of the whole process tree, measured and killed by the kernel). ``probe()`` finds out once
per process which ones work; ``describe()`` says in one line what holds and what is lost.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import itertools
import os
import shutil
import signal
import site
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import seeding
from .child import llmc_confine

PACKAGE_DIR = Path(__file__).resolve().parent
CHILD_DIR = PACKAGE_DIR / "child"
MODES = ("auto", "strict", "off")
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
PIDS_MAX = 1024


@dataclass
class Host:
    namespaces: bool
    landlock: int
    cgroup: str  # "v1", "v2" or ""
    why: dict[str, str] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.namespaces and self.landlock >= 1 and bool(self.cgroup)


def _namespaces_work() -> str:
    """Empty when a child can unshare every namespace the sandbox uses, else why not."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            flags = 0x10000000 | 0x20000 | 0x20000000 | 0x40000000 | 0x8000000 | 0x4000000
            os._exit(0 if libc.unshare(flags) == 0 else min(ctypes.get_errno(), 120))
        finally:
            os._exit(121)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return "" if code == 0 else f"unshare refused ({os.strerror(code) if 0 < code < 121 else code})"


def _own_cgroup(controller: str) -> Path | None:
    """The writable cgroup folder of this process for a v1 controller, or of the v2 hierarchy ("")."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller and controller in names.split(",")) or (not controller and names == ""):
                for base in (Path("/sys/fs/cgroup") / controller, Path("/sys/fs/cgroup/unified")):
                    folder = base / path.lstrip("/")
                    if controller and base.name != controller:
                        continue
                    if (folder / "cgroup.procs").exists() and os.access(folder, os.W_OK):
                        return folder
                if not controller:
                    folder = Path("/sys/fs/cgroup") / path.lstrip("/")
                    if (folder / "cgroup.controllers").exists() and os.access(folder, os.W_OK):
                        return folder
    return None


def _cgroup_mode() -> tuple[str, str]:
    mem, pids = _own_cgroup("memory"), _own_cgroup("pids")
    if mem and pids and (mem / "memory.max_usage_in_bytes").exists():
        return "v1", ""
    v2 = _own_cgroup("")
    if v2 is not None:
        controllers = (v2 / "cgroup.subtree_control").read_text().split() if v2 else []
        if "memory" in controllers and "pids" in controllers:
            return "v2", ""
        return "", "cgroup v2 without the memory and pids controllers delegated here"
    return "", "no writable cgroup"


_HOST: list[Host] = []


def probe() -> Host:
    """Which mechanisms work here (found once per process)."""
    if not _HOST:
        why: dict[str, str] = {}
        ns = _namespaces_work()
        if ns:
            why["namespaces"] = ns
        abi = llmc_confine.landlock_abi()
        if abi < 1:
            why["landlock"] = "Landlock unavailable"
        mode, cg = _cgroup_mode()
        if cg:
            why["cgroup"] = cg
        else:
            _remove_orphans()
        _HOST.append(Host(not ns, abi, mode, why))
    return _HOST[0]


def mode(config: pytest.Config) -> str:
    """The run's --llm-isolation (ini ``llm_isolation``; default auto)."""
    value = config.getoption("llm_isolation", None) or config.getini("llm_isolation")
    return value if value in MODES else "auto"


def run_entry(config: pytest.Config) -> dict[str, object]:
    """What the reports' run section records about isolation and inputs."""
    return {"seed": seeding.run_seed(config), "isolation": describe(mode(config))}


LOST = {
    "namespaces": "no namespaces: the child can read every file its user can, reach the network except TCP, "
    "and see the grading processes",
    "landlock": "no Landlock: no second kernel check on reads, writes and TCP",
    "cgroup": "no cgroup: memory is sampled from /proc (a process tree that escapes the sampling is not measured)",
}


def describe(mode: str = "auto") -> str:
    """One line for the header and the reports: which guarantees hold."""
    if mode == "off":
        return "isolation: off (--llm-isolation=off: temp copy, audit hook and Landlock writes only)"
    host = probe()
    if host.full:
        return f"isolation: full (namespaces, landlock abi {host.landlock}, cgroup {host.cgroup})"
    return "isolation: partial, " + "; ".join(f"{LOST[k]} ({host.why[k]})" for k in LOST if k in host.why)


_MOUNTPOINT: list[str] = []


def _mountpoint() -> str:
    """An empty folder each call's new root is mounted on, inside the call's own mount namespace only."""
    if not _MOUNTPOINT:
        path = tempfile.mkdtemp(prefix="llmc-root-")
        os.chmod(path, 0o755)
        atexit.register(shutil.rmtree, path, True)
        _MOUNTPOINT.append(path)
    return _MOUNTPOINT[0]


@functools.lru_cache(maxsize=1)
def _readable() -> tuple[str, ...]:
    return tuple(readable_paths())


def readable_paths() -> list[str]:
    """What a child may read: the system's programs and libraries, the Python runtime and its installed
    packages. The grader's own package is hidden again where it sits beneath one of these."""
    paths = [p for p in _SYSTEM if os.path.lexists(p)] + [p for p in _ETC if os.path.exists(p)]
    extra = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    extra |= {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    extra |= set(site.getsitepackages()) | {site.getusersitepackages()}
    for path in sorted(p for p in extra if p and os.path.isdir(p)):
        real = os.path.realpath(path)
        for p in (path, real):
            if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in paths):
                paths.append(p)
    return paths


def plan(source: Path, memory_limit: int, cuda: bool, cgroup_procs: list[str]) -> dict:
    """Everything ``llmc_isolate.enter`` needs for one call."""
    readable = list(_readable())
    pkg = str(PACKAGE_DIR)
    hidden = [pkg] if any(pkg.startswith(p.rstrip("/") + "/") for p in readable) else []
    devices: list[str] = []
    if cuda:  # the GPU challenges: device nodes and the driver's view of the machine, read-only where possible
        devices = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
        readable = readable + [p for p in ("/sys", "/etc/OpenCL", "/etc/nvidia") if os.path.exists(p)]
    return {
        "mountpoint": _mountpoint(),
        "readable": readable,
        "hidden": hidden,
        "devices": devices,
        "toolkit": str(CHILD_DIR),
        "source": str(source),
        "sizes": {"bytes": max(64 << 20, memory_limit // 2), "inodes": 65536},
        "cgroups": cgroup_procs,
    }


_SEQ = itertools.count()
_STALE: list[Path] = []


class CallCgroup:
    """One cgroup per call (v1: memory + pids; v2: one folder): a memory cap, peak and kill for the whole
    tree, including helper processes the submission starts."""

    def __init__(self, mode: str, memory_cap: int) -> None:
        self.mode = mode
        name = f"llmc-{os.getpid()}-{next(_SEQ)}"
        if mode == "v1":
            self.mem = _own_cgroup("memory") / name  # type: ignore[operator]
            self.pids = _own_cgroup("pids") / name  # type: ignore[operator]
            cpu = _own_cgroup("cpuacct")
            self.cpu = None if cpu is None else cpu / name
            self.folders = [self.mem, self.pids] + ([self.cpu] if self.cpu else [])
        else:
            self.mem = self.pids = self.cpu = _own_cgroup("") / name  # type: ignore[operator]
            self.folders = [self.mem]
        for f in self.folders:
            f.mkdir()
        self._peak_fd: int | None = None
        if mode == "v1":
            (self.mem / "memory.limit_in_bytes").write_text(str(memory_cap))
            with contextlib.suppress(OSError):
                (self.mem / "memory.memsw.limit_in_bytes").write_text(str(memory_cap))
        else:
            (self.mem / "memory.max").write_text(str(memory_cap))
            with contextlib.suppress(OSError):
                (self.mem / "memory.swap.max").write_text("0")
        (self.pids / "pids.max").write_text(str(PIDS_MAX))

    @property
    def procs(self) -> list[str]:
        return [str(f / "cgroup.procs") for f in self.folders]

    def usage(self) -> int:
        name = "memory.usage_in_bytes" if self.mode == "v1" else "memory.current"
        try:
            return int((self.mem / name).read_text())
        except (OSError, ValueError):
            return 0

    def reset_peak(self) -> bool:
        """Start of a peak measurement: the peak becomes the current usage. False where the kernel cannot
        reset it (cgroup v2 before Linux 6.12): the caller then samples the usage instead."""
        try:
            if self.mode == "v1":
                (self.mem / "memory.max_usage_in_bytes").write_text("0")
            else:  # Linux >= 6.12: a write resets the peak seen through this file descriptor
                if self._peak_fd is None:
                    self._peak_fd = os.open(self.mem / "memory.peak", os.O_RDWR)
                os.write(self._peak_fd, b"reset\n")
        except OSError:
            return False
        return True

    def peak(self) -> int:
        try:
            if self.mode == "v1":
                return int((self.mem / "memory.max_usage_in_bytes").read_text())
            if self._peak_fd is not None:
                return int(os.pread(self._peak_fd, 64, 0))
            return int((self.mem / "memory.peak").read_text())
        except (OSError, ValueError):
            return 0

    def cpu_seconds(self) -> float | None:
        """CPU time of every process the call ran (user + system), from the kernel's accounting."""
        try:
            if self.cpu is None:
                return None
            if self.mode == "v1":
                return int((self.cpu / "cpuacct.usage").read_text()) / 1e9
            stat = dict(ln.split() for ln in (self.cpu / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError):
            return None

    def oom_killed(self) -> bool:
        try:
            if self.mode == "v1":
                text = (self.mem / "memory.oom_control").read_text()
            else:
                text = (self.mem / "memory.events").read_text()
        except OSError:
            return False
        return any(ln.split()[0] == "oom_kill" and int(ln.split()[1]) > 0 for ln in text.splitlines())

    def members(self) -> list[int]:
        out: list[int] = []
        for f in self.folders:
            with contextlib.suppress(OSError, ValueError):
                out += [int(x) for x in (f / "cgroup.procs").read_text().split()]
        return out

    def kill(self) -> None:
        """Kill everything in the cgroup (v2: cgroup.kill; v1: SIGKILL each member, a few passes to catch what
        was forked meanwhile). Not waited for: the processes leave the cgroup as the kernel reaps them, and
        ``sweep`` removes it once empty."""
        if self.mode == "v2":
            with contextlib.suppress(OSError):
                (self.mem / "cgroup.kill").write_text("1")
        for _ in range(3):
            for pid in self.members():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        _STALE.extend(self.folders)
        sweep()


def sweep() -> None:
    """Remove call cgroups whose last process is gone (a dying process keeps its cgroup busy a moment)."""
    for folder in list(_STALE):
        try:
            folder.rmdir()
            _STALE.remove(folder)
        except FileNotFoundError:
            _STALE.remove(folder)
        except OSError:
            pass


def _remove_orphans() -> None:
    """Empty call cgroups left by a grading process that was killed before it could remove them."""
    for controller in ("memory", "pids", "cpuacct", ""):
        parent = _own_cgroup(controller)
        for folder in parent.glob("llmc-*-*") if parent else []:
            pid = folder.name.split("-")[1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    folder.rmdir()


@atexit.register
def _last_sweep() -> None:
    for _ in range(20):
        sweep()
        if not _STALE:
            return
        time.sleep(0.05)
