"""The sandbox on its own: verdict categories, confinement, clean-up. Uses the selfcheck driver."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_llmchallenges import processes
from pytest_llmchallenges.grading import GradingFailure
from pytest_llmchallenges.sandbox import Sandbox
from pytest_llmchallenges.sandboxed import llmc_wire


def box(tmp_path: Path, code: str, timeout: float = 10, **kw: object) -> Sandbox:
    folder = tmp_path / "sub" / "backwards"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sol.py").write_text(code)
    return Sandbox("backwards", folder, timeout, **kw)  # type: ignore[arg-type]


def verdict(sb: Sandbox, *args: object, **kw: object) -> GradingFailure:
    with pytest.raises(GradingFailure) as info:
        sb.run("selfcheck:call_entry", *args, **kw)  # type: ignore[arg-type]
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
    r = sb.run("selfcheck:call_entry", 5)
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
    box(warm, "def entry(x):\n    return x\n").run("selfcheck:call_entry", 0)  # the fork server is a legit child
    before = set(processes.children(os.getpid()))
    assert box(tmp_path, code).run("selfcheck:call_entry", 21).value == 42
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
        "import os\ndef entry(x):\n"
        "    root = os.environ['GRADER_CWD']\n"
        "    for target in ['../escape.txt', root + '/escape.txt', root + '/sub/backwards/sol.py']:\n"
        "        try:\n            open(target, 'w').write('x')\n        except OSError:\n            pass\n"
        "    open('inside.txt', 'w').write('fine')\n    return x * 2\n"
    )
    sb = box(tmp_path, code)
    before = tree_hash(tmp_path)
    os.environ["GRADER_CWD"] = str(tmp_path)
    try:
        assert sb.run("selfcheck:call_entry", 21).value == 42
    finally:
        del os.environ["GRADER_CWD"]
    assert tree_hash(tmp_path) == before


def test_grader_package_cannot_be_imported(tmp_path: Path) -> None:
    v = verdict(box(tmp_path, "def entry(x):\n    import pytest_llmchallenges.oracles\n    return x\n"), 1)
    assert v.category == "error" and "cannot be imported" in v.reason


def test_memory_is_measured_from_outside(tmp_path: Path) -> None:
    code = (
        "import numpy as np, tracemalloc\ndef entry(n):\n    tracemalloc.stop()\n"
        "    a = np.ones((n, n))\n    return float(a.sum())\n"
    )
    r = box(tmp_path, code).run("selfcheck:measured_entry", 2048, measure_memory=True)
    assert r.peak_bytes is not None and r.peak_bytes > 30 << 20
    assert r.attribution and "stopped" in r.attribution


def test_large_output_keeps_only_a_tail(tmp_path: Path) -> None:
    code = "import sys\ndef entry(x):\n    sys.stdout.write('y' * (50 << 20))\n    return x * 2\n"
    r = box(tmp_path, code, timeout=30).run("selfcheck:call_entry", 21)
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
    r = box(tmp_path, code, confine=False).run("selfcheck:call_entry", str(target))
    assert "refused" in r.value and "audit-hook" in r.confinement
    assert not target.exists()
