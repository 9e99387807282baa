"""The sandbox on its own: verdict categories, confinement, clean-up. Uses the selfcheck driver."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges import isolation, processes, seeding
from pytest_llmchallenges.calls import IsolationUnavailable, Sandbox
from pytest_llmchallenges.child import llmc_drive_selfcheck as selfcheck
from pytest_llmchallenges.child import llmc_wire
from pytest_llmchallenges.grading import GradingFailure


def box(tmp_path: Path, code: str, timeout: float = 10, **kw: object) -> Sandbox:
    folder = tmp_path / "sub" / "backwards"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sol.py").write_text(code)
    return Sandbox("backwards", folder, timeout, **kw)  # type: ignore[arg-type]


def verdict(sb: Sandbox, *args: object, **kw: object) -> GradingFailure:
    with pytest.raises(GradingFailure) as info:
        sb.run(selfcheck.call_entry, *args, **kw)  # type: ignore[arg-type]
    return info.value


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_result_comes_back_as_data_not_stdout(tmp_path: Path) -> None:
    sb = box(tmp_path, "import numpy as np\ndef entry(n):\n    print('noise' * 100)\n    return {'a': np.arange(n)}\n")
    r = sb.run(selfcheck.call_entry, 5)
    assert np.array_equal(r.value["a"], np.arange(5))
    assert "noise" in r.output


def test_exception_is_error_with_submission_traceback(tmp_path: Path) -> None:
    v = verdict(box(tmp_path, "def entry(x):\n    raise ValueError('bad shape')\n"), 1)
    assert v.category == "error" and "ValueError: bad shape" in v.reason
    assert 'File "sol.py", line 2' in v.detail


@pytest.mark.parametrize(
    ("code", "expect"),
    [
        ("import sys\nsys.exit(3)\ndef entry(x): return x\n", "sys.exit(3)"),
        ("import os\ndef entry(x):\n    os._exit(0)\n", "exited with status 0"),
        ("import ctypes\ndef entry(x):\n    ctypes.string_at(0)\n", "SIGSEGV"),
    ],
    ids=["sys-exit-at-import", "os-exit-in-call", "segfault"],
)
def test_crashes(tmp_path: Path, code: str, expect: str) -> None:
    v = verdict(box(tmp_path, code), 1)
    assert v.category == "crash" and expect in str(v)


def test_endless_loop_with_blocked_signals_times_out(tmp_path: Path) -> None:
    code = (
        "import signal\ndef entry(x):\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, range(1, 32))\n    while True: pass\n"
    )
    start = time.monotonic()
    v = verdict(box(tmp_path, code, timeout=1.5), 1)
    assert v.category == "timeout" and time.monotonic() - start < 8


def test_memory_bomb_is_stopped(tmp_path: Path) -> None:
    code = "import numpy as np\ndef entry(x):\n    keep = []\n    while True:\n        keep.append(np.ones(1 << 27))\n"
    v = verdict(box(tmp_path, code, memory_limit=1 << 30), 1)
    assert v.category == "memory"


def test_background_children_do_not_survive(tmp_path: Path) -> None:
    code = (
        "import subprocess\ndef entry(x):\n"
        "    for _ in range(5):\n"
        "        subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "    return x * 2\n"
    )
    warm = tmp_path / "warm"
    box(warm, "def entry(x):\n    return x\n").run(selfcheck.call_entry, 0)  # the fork server is a legit child
    before = set(processes.children(os.getpid()))
    assert box(tmp_path, code).run(selfcheck.call_entry, 21).value == 42
    time.sleep(0.2)
    assert set(processes.children(os.getpid())) <= before
    leftover = [p for p in os.listdir("/proc") if p.isdigit() and "sleep\x00600" in _cmdline(p)]
    assert not leftover


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_writes_outside_the_temp_copy_are_refused(tmp_path: Path) -> None:
    code = (
        "import os\ndef entry(x, root):\n"
        "    for target in ['../escape.txt', root + '/escape.txt', root + '/sub/backwards/sol.py']:\n"
        "        try:\n            open(target, 'w').write('x')\n        except OSError:\n            pass\n"
        "    open('inside.txt', 'w').write('fine')\n    return x * 2\n"
    )
    for mode in ("auto", "off"):
        sb = box(tmp_path, code, isolation=mode)
        before = tree_hash(tmp_path)
        assert sb.run(selfcheck.call_entry, 21, str(tmp_path)).value == 42
        assert tree_hash(tmp_path) == before, mode


def test_grader_package_cannot_be_imported(tmp_path: Path) -> None:
    v = verdict(
        box(tmp_path, "def entry(x):\n    import pytest_llmchallenges.challenges.backwards.oracle\n    return x\n"), 1
    )
    assert v.category == "error" and "cannot be imported" in v.reason


def test_memory_is_measured_from_outside(tmp_path: Path) -> None:
    code = (
        "import numpy as np, tracemalloc\ndef entry(n):\n    tracemalloc.stop()\n"
        "    a = np.ones((n, n))\n    return float(a.sum())\n"
    )
    r = box(tmp_path, code).run(selfcheck.measured_entry, 2048, measure_memory=True)
    assert r.peak_bytes is not None and r.peak_bytes > 30 << 20
    assert r.attribution and "stopped" in r.attribution


def test_large_output_keeps_only_a_tail(tmp_path: Path) -> None:
    code = "import sys\ndef entry(x):\n    sys.stdout.write('y' * (50 << 20))\n    return x * 2\n"
    r = box(tmp_path, code, timeout=30).run(selfcheck.call_entry, 21)
    assert r.value == 42 and len(r.output) < 10_000 and "earlier bytes" in r.output


def test_wire_refuses_objects() -> None:
    with pytest.raises(llmc_wire.WireError):
        llmc_wire.encode(np.array([object()]))
    with pytest.raises(llmc_wire.WireError):
        llmc_wire.encode({"f": print})


def test_without_landlock_the_audit_hook_still_refuses_writes(tmp_path: Path) -> None:
    """The fallback for hosts without Landlock and for CUDA calls (confine=False): Python-level writes outside
    the temp copy are refused by the audit hook."""
    code = (
        "def entry(target):\n    try:\n        open(target, 'w').write('x')\n"
        "    except PermissionError as exc:\n        return str(exc)\n    return 'written'\n"
    )
    target = tmp_path / "escape.txt"
    r = box(tmp_path, code, confine=False, isolation="off").run(selfcheck.call_entry, str(target))
    assert "refused" in r.value and "audit-hook" in r.confinement
    assert not target.exists()


# --- isolation (issue 15): each guarantee, with evidence gathered outside the child ---------------------------

HOST = isolation.probe()
needs_namespaces = pytest.mark.skipif(not HOST.namespaces, reason=f"no namespaces here: {isolation.describe()}")
needs_cgroup = pytest.mark.skipif(not HOST.cgroup, reason=f"no writable cgroup here: {isolation.describe()}")
REPO = Path(__file__).resolve().parents[1]

READER = textwrap.dedent(
    """
    import os, subprocess

    def entry(paths):
        found = {}
        for p in paths:
            for how in ("open", "os.open", "cat"):
                try:
                    if how == "open":
                        data = open(p, "rb").read()
                    elif how == "os.open":
                        data = os.read(os.open(p, os.O_RDONLY), 1 << 16)
                    else:
                        data = subprocess.run(["cat", p], capture_output=True, timeout=5).stdout
                    if data:
                        found[p + " by " + how] = data.decode("utf-8", "replace")[:200]
                except Exception:
                    pass
        pids = sorted(int(x) for x in os.listdir("/proc") if x.isdigit())
        return {"found": found, "pids": pids, "env": dict(os.environ), "cwd": os.getcwd()}
    """
)


@needs_namespaces
def test_reads_reach_nothing_beyond_the_copy_and_the_runtime(tmp_path: Path) -> None:
    secret = "canary-" + os.urandom(8).hex()
    canary = tmp_path / "canary.txt"
    canary.write_text(secret)
    sb = box(tmp_path, READER)
    folder = sb.challenge_dir
    (folder / "link_out").symlink_to(canary)
    os.link(canary, folder / "hard_link")
    os.mkfifo(folder / "pipe")
    reference = next((REPO / "reference" / "backwards").glob("*.py"))
    own = REPO / "pytest_llmchallenges" / "challenges" / "backwards"  # the call's own challenge: its driver is bound
    oracle, suite, prompt = own / "oracle.py", own / "suite" / "test_backwards.py", own / "prompt.md"
    targets = [str(canary), str(reference), str(oracle), str(suite), str(prompt), "link_out", "hard_link"]
    targets += [f"/proc/{os.getpid()}/environ"]
    targets += [f"/proc/1/root{canary}", f"/proc/{os.getpid()}/cmdline", str(Path.home() / ".bashrc")]
    os.environ["LLMC_TEST_SECRET"] = secret
    try:
        r = sb.run(selfcheck.call_entry, targets)
    finally:
        del os.environ["LLMC_TEST_SECRET"]
    assert not r.value["found"], r.value["found"]
    assert secret not in repr(r.value) and secret not in r.output
    assert "LLMC_TEST_SECRET" not in r.value["env"] and "PYTEST_CURRENT_TEST" not in r.value["env"]
    assert os.getpid() not in r.value["pids"] and len(r.value["pids"]) < 10, r.value["pids"]
    assert {s.split(" ")[0] for s in r.skipped} == {"link_out", "hard_link", "pipe"}, r.skipped


@needs_namespaces
def test_a_readable_path_beneath_tmp_stays_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the call's private /tmp must not hide a runtime or package that lives under /tmp (a clean
    clone in /tmp): readable paths are bound after /tmp is mounted."""
    runtime = Path(tempfile.mkdtemp(prefix="llmc-runtime-"))
    try:
        (runtime / "probe.txt").write_text("visible")
        monkeypatch.setattr(isolation, "_readable", lambda: (*isolation.readable_paths(), str(runtime)))
        r = box(tmp_path, READER).run(selfcheck.call_entry, [str(runtime / "probe.txt")])
        assert r.value["found"] == {f"{runtime}/probe.txt by {how}": "visible" for how in ("open", "os.open", "cat")}
    finally:
        shutil.rmtree(runtime)


NETWORK = textwrap.dedent(
    """
    import socket

    def entry(udp, tcp, unix_path, abstract):
        tried = []
        for family, kind, where in [
            (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", udp)),
            (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", tcp)),
            (socket.AF_UNIX, socket.SOCK_DGRAM, unix_path),
            (socket.AF_UNIX, socket.SOCK_DGRAM, "\\0" + abstract),
        ]:
            try:
                s = socket.socket(family, kind)
                s.settimeout(1)
                if kind == socket.SOCK_DGRAM:
                    s.sendto(b"leak", where)
                else:
                    s.connect(where)
                    s.sendall(b"leak")
                tried.append("sent")
            except OSError as exc:
                tried.append(type(exc).__name__)
        return tried
    """
)


@needs_namespaces
def test_no_network_reaches_the_grader(tmp_path: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    unix_path = str(tmp_path / "grader.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(unix_path)
    name = "llmc-test-" + os.urandom(6).hex()
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name)
    try:
        args = (udp.getsockname()[1], tcp.getsockname()[1], unix_path, name)
        tried = box(tmp_path, NETWORK).run(selfcheck.call_entry, *args).value
        for s in (udp, tcp, unix, abstract):
            s.setblocking(False)
        for s in (udp, unix, abstract):
            with pytest.raises(BlockingIOError):
                s.recv(100)
        with pytest.raises(BlockingIOError):
            tcp.accept()
        assert "sent" not in tried[1:], tried  # a UDP send to a down loopback may "succeed" into the void
    finally:
        for s in (udp, tcp, unix, abstract):
            s.close()


PROCESSES = textwrap.dedent(
    """
    import os, resource, signal

    def entry(pids):
        done = []
        for pid in pids:
            for what, action in [
                ("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (16, 16))),
                ("kill", lambda: os.kill(pid, signal.SIGSTOP)),
                ("priority", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
                ("affinity", lambda: os.sched_setaffinity(pid, {0})),
            ]:
                try:
                    action()
                    done.append(f"{what} {pid}")
                except OSError:
                    pass
        return done
    """
)


@needs_namespaces
def test_grading_processes_are_untouchable(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pids = [os.getpid(), bystander.pid]
        before = [Path(f"/proc/{p}/limits").read_text() for p in pids]
        prio = [os.getpriority(os.PRIO_PROCESS, p) for p in pids]
        box(tmp_path, PROCESSES).run(selfcheck.call_entry, pids)
        assert [Path(f"/proc/{p}/limits").read_text() for p in pids] == before
        assert [os.getpriority(os.PRIO_PROCESS, p) for p in pids] == prio
        assert "T" not in Path(f"/proc/{bystander.pid}/stat").read_text().split()[2]
    finally:
        bystander.kill()
        bystander.wait()


PERSIST = textwrap.dedent(
    """
    import fcntl, os, struct

    def entry(name):
        seen = [p for p in ("/tmp/" + name, "/dev/shm/" + name, os.path.expanduser("~/" + name)) if os.path.exists(p)]
        for p in ("/tmp/" + name, "/dev/shm/" + name, os.path.expanduser("~/" + name), name):
            with open(p, "w") as f:
                f.write("state")
        os.mkfifo("fifo")
        try:
            fd = os.open(name, os.O_RDONLY)
            fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0x10))  # FS_IOC_SETFLAGS immutable
        except OSError:
            pass
        deep = "d"
        for _ in range(300):
            os.mkdir(deep)
            os.chdir(deep)
        os.chdir("/llmc/sub")
        dev = []
        for node in ("/dev/llmc", "/dev/null2"):
            try:
                os.mknod(node)
                dev.append(node)
            except OSError:
                pass
        return {"seen": seen, "dev": dev}
    """
)


@needs_namespaces
def test_nothing_persists_between_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "llmc-marker-" + os.urandom(6).hex()
    sb = box(tmp_path, PERSIST)
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))  # any temp folder the grader makes lands here
    first = sb.run(selfcheck.call_entry, name).value
    second = sb.run(selfcheck.call_entry, name).value
    assert first == second == {"seen": [], "dev": []}
    assert not (Path("/tmp") / name).exists() and not (Path("/dev/shm") / name).exists()
    assert not list((tmp_path / "temp").iterdir())
    assert sorted(p.name for p in sb.challenge_dir.iterdir()) == ["sol.py"]  # the original folder is untouched


FORGE = textwrap.dedent(
    """
    import json, os, struct

    def forge(event):
        # talk the result protocol, on every pipe this process holds
        header = json.dumps({"$dict": [["event", event]]}).encode()
        payload = struct.pack("<I", len(header)) + header
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack("<Q", len(payload)) + payload)
            except OSError:
                pass
    """
)

HELPER = FORGE + textwrap.dedent(
    """
    import subprocess, sys

    def entry(n):
        forge("done")  # claim the measurement is over
        code = "import numpy, time; a = numpy.ones((%d, %d)); time.sleep(0.5)" % (n, n)
        subprocess.run([sys.executable, "-c", code], check=True)
        return n
    """
)


@needs_cgroup
def test_helper_processes_and_forged_frames_do_not_hide_memory(tmp_path: Path) -> None:
    """An N x N matrix (128 MiB) kept in a helper process, after a forged 'done' frame, is still measured."""
    r = box(tmp_path, HELPER, timeout=60).run(selfcheck.measured_entry, 4096, measure_memory=True)
    assert r.peak_bytes is not None and r.peak_bytes > 120 << 20, r.peak_bytes


def test_oversized_result_is_refused_before_it_is_read(tmp_path: Path) -> None:
    code = "import numpy as np\ndef entry(n):\n    return np.ones(n)\n"
    sb = box(tmp_path, code, timeout=60)
    sb.run(selfcheck.call_entry, 10)
    before = processes.status_field(os.getpid(), "VmRSS") or 0
    v = verdict(sb, 40 << 20, result_bound=16 << 20)  # 320 MiB announced
    grown = (processes.status_field(os.getpid(), "VmRSS") or 0) - before
    assert v.category == "memory" and "refused before reading it" in v.reason, v
    assert grown < 24 << 20, f"the grader grew by {grown >> 20} MiB"


@needs_cgroup
def test_no_cgroup_mount_or_temp_folder_is_left_behind(tmp_path: Path) -> None:
    sb = box(tmp_path, "def entry(x):\n    return x\n")
    mounts = Path("/proc/self/mountinfo").read_text()
    sb.run(selfcheck.call_entry, 1)
    isolation.sweep()
    time.sleep(0.2)
    isolation.sweep()
    mine = f"llmc-{os.getpid()}-"
    left = [p for c in ("memory", "pids", "") for p in _cgroup_children(c) if p.name.startswith(mine)]
    assert not left, left
    assert Path("/proc/self/mountinfo").read_text() == mounts


def _cgroup_children(controller: str) -> list[Path]:
    folder = isolation._own_cgroup(controller)
    return [p for p in folder.iterdir() if p.is_dir()] if folder else []


def test_isolation_line_says_what_holds() -> None:
    line = isolation.describe()
    assert line.startswith("isolation: full (") or line.startswith("isolation: partial, ")
    assert isolation.describe("off").startswith("isolation: off")


def test_without_namespaces_landlock_still_limits_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partial mode (no namespaces, e.g. user namespaces disabled): Landlock alone keeps the canary and the
    reference out of reach, and the header line says what is lost."""
    if HOST.landlock < 1:
        pytest.skip("no Landlock here")
    monkeypatch.setattr(isolation, "_HOST", [isolation.Host(False, HOST.landlock, HOST.cgroup, {"namespaces": "test"})])
    assert isolation.describe().startswith("isolation: partial, no namespaces")
    secret = "canary-" + os.urandom(8).hex()
    (tmp_path / "canary.txt").write_text(secret)
    reference = next((REPO / "reference" / "backwards").glob("*.py"))
    r = box(tmp_path, READER).run(selfcheck.call_entry, [str(tmp_path / "canary.txt"), str(reference)])
    assert not r.value["found"] and "reads too" in r.confinement, (r.value["found"], r.confinement)


def test_strict_refuses_a_host_without_full_isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "_HOST", [isolation.Host(True, 0, "", {"landlock": "x", "cgroup": "y"})])
    with pytest.raises(IsolationUnavailable, match="strict refuses to grade: isolation: partial"):
        box(tmp_path, "def entry(x):\n    return x\n", isolation="strict").run(selfcheck.call_entry, 1)


def test_seed_default_keeps_the_inputs_and_a_seed_changes_them() -> None:
    assert seeding.stable("test_x") == zlib.crc32(b"test_x")  # the default run's inputs never change
    assert seeding.stable("test_x", 7) != seeding.stable("test_x") != seeding.stable("test_x", 8)
    assert seeding.parse("random") == seeding.parse("random") > 0  # drawn once per run, shared by workers
    assert seeding.parse("12") == 12
    with pytest.raises(pytest.UsageError):
        seeding.parse("twelve")


@needs_namespaces
def test_an_installed_grader_package_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-editable install puts the grader's package (oracles, packaged reference) inside site-packages,
    which the child may read: the package folder is covered again, the driver code is bound elsewhere."""
    site_like = str(isolation.PACKAGE_DIR.parent)  # stands for site-packages: the folder holding the package
    monkeypatch.setattr(isolation, "_readable", lambda: (*isolation.readable_paths(), site_like))
    oracle = isolation.PACKAGE_DIR / "challenges" / "backwards" / "oracle.py"
    readme = isolation.PACKAGE_DIR.parent / "pyproject.toml"
    r = box(tmp_path, READER).run(selfcheck.call_entry, [str(oracle), str(readme)])
    assert sorted(r.value["found"]) == [f"{readme} by {how}" for how in ("cat", "open", "os.open")]


FORGED_MARK = FORGE + textwrap.dedent(
    """
    import select, time
    import numpy as np

    def entry(n):
        a = np.ones((n, n))  # 128 MiB, then freed: a restart of the measurement now would hide it
        total = float(a.sum())
        del a
        forge("mark")
        time.sleep(0.3)
        for fd in range(3, 64):  # swallow the parent's "go", so that the driver's protocol stays in step
            try:
                if select.select([fd], [], [], 0)[0]:
                    os.read(fd, 1 << 16)
            except (OSError, ValueError):
                pass
        return total
    """
)


def test_a_forged_mark_does_not_hide_an_earlier_peak(tmp_path: Path) -> None:
    r = box(tmp_path, FORGED_MARK, timeout=60).run(selfcheck.measured_entry, 4096, measure_memory=True)
    assert r.value == 4096 * 4096 and r.peak_bytes is not None and r.peak_bytes > 120 << 20, r.peak_bytes


KERNEL_KNOBS = textwrap.dedent(
    """
    import ctypes, os

    def entry(paths):
        libc = ctypes.CDLL(None)  # past the audit hook: only the kernel decides
        opened = []
        for p in paths:  # opened for writing only, never written: a failure of this test must not harm the host
            fd = libc.open(p.encode(), os.O_WRONLY)
            if fd >= 0:
                os.close(fd)
                opened.append(p)
        return opened
    """
)


@needs_namespaces
@pytest.mark.parametrize("confine", [True, False], ids=["landlock", "no-landlock (CUDA calls)"])
def test_kernel_settings_cannot_be_opened_for_writing(tmp_path: Path, confine: bool) -> None:
    """The call's root is the grader's user mapped (root, when the grader runs as root): /proc is mounted
    read-only so that sysctls and the sysrq trigger stay shut even where Landlock is off."""
    knobs = ["/proc/sysrq-trigger", "/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern", "/proc/1/oom_score_adj"]
    assert box(tmp_path, KERNEL_KNOBS, confine=confine).run(selfcheck.call_entry, knobs).value == []


@needs_cgroup
def test_without_a_resettable_peak_the_cgroup_usage_is_sampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cgroup v2 before Linux 6.12 cannot reset memory.peak: the call's usage is sampled instead (a helper's
    N x N held for half a second is still seen)."""
    monkeypatch.setattr(isolation.CallCgroup, "reset_peak", lambda self: False)
    r = box(tmp_path, HELPER, timeout=60).run(selfcheck.measured_entry, 4096, measure_memory=True)
    assert r.peak_bytes is not None and r.peak_bytes > 120 << 20, r.peak_bytes


@needs_cgroup
def test_cpu_time_covers_helper_processes(tmp_path: Path) -> None:
    """CPU time comes from the call's cgroup: 0.3 s burnt in a helper process is counted."""
    code = (
        "import subprocess, sys\ndef entry(x):\n"
        "    burn = 'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass'\n"
        "    subprocess.run([sys.executable, '-c', burn], check=True)\n    return x\n"
    )
    r = box(tmp_path, code, timeout=60).run(selfcheck.call_entry, 1)
    assert r.cpu_seconds is not None and r.cpu_seconds >= 0.3, r.cpu_seconds


@needs_cgroup
def test_cgroups_of_a_killed_grader_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A grading process killed hard leaves its empty call cgroups; the next one removes them at its probe."""
    folder = isolation._own_cgroup("pids")
    assert folder is not None
    orphan = folder / "llmc-999999999-0"  # no such process
    orphan.mkdir()
    monkeypatch.setattr(isolation, "_HOST", [])
    isolation.probe()
    assert not orphan.exists()
