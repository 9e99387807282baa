"""Meta-tests over the hostile corpus (tests/hostile/, see its README): every grading run survives it.

The whole corpus is graded in one run next to the reference, as a user would grade a bench of models; each
case's verdict is then asserted on its own, and so is the reference's (a hostile neighbour must not change
it). The run also proves the session completes, the JSON report is written and the exit code says "tests
failed", not "internal error".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_llmchallenges import isolation
from pytest_llmchallenges.child import llmc_drive_selfcheck as selfcheck
from tests.grading_run import REPO, GradingRun, grade

HOSTILE = REPO / "tests" / "hostile"
KEY_TEST = "test_gradients_match_oracle"
# case -> (category of the key test, or "passed"; categories any other failing test may show)
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "01_exit_at_import": ("crash", {"crash"}),
    "02_fake_clean_exit": ("crash", {"crash"}),
    "03_segfault": ("crash", {"crash"}),
    "04_endless_loop": ("timeout", {"timeout"}),
    "05_signal_proof_loop": ("timeout", {"timeout"}),
    "06_memory_bomb": ("memory", {"memory"}),
    "07_loud_output": ("passed", set()),
    "08_background_children": ("passed", set()),
    "09_patch_numpy": ("wrong", {"wrong"}),
    "11_grader_import": ("wrong", {"wrong", "error"}),
    "12_file_writer": ("passed", set()),
    "13_conftest_rewrite": ("wrong", {"wrong"}),
    "14_all_zero": ("wrong", {"wrong"}),
    "15_all_nan": ("wrong", {"wrong"}),
    "16_identity": ("wrong", {"wrong"}),
    "17_slow_correct": ("timeout", {"timeout"}),
    "18_parse_error_plus_valid": ("passed", set()),
    "19_read_outside": ("wrong", {"wrong"}),
    "20_network": ("wrong", {"wrong"}),
    "21_touch_grader": ("wrong", {"wrong"}),
    "22_persist": ("wrong", {"wrong"}),
    "24_huge_frame": ("memory", {"memory"}),
    "25_special_files": ("wrong", {"wrong"}),
}
ISOLATED = isolation.probe().namespaces
CANARY = Path("/tmp/llmc-hostile-canary.txt")
MARKERS = [Path("/tmp/llmc-hostile-marker"), Path("/dev/shm/llmc-hostile-marker"), Path("/dev/llmc-hostile-marker")]
FIFO = HOSTILE / "25_special_files" / "backwards" / "a_fifo"


@dataclass
class Evidence:
    """What the meta-test saw from outside the children while the corpus was graded."""

    changed: dict[str, list[str]]
    survivors: set[int]
    secret: str
    received: list[str] = field(default_factory=list)
    bystander: tuple[str, str] = ("", "")  # /proc/PID/limits and state of an unrelated process, before vs after
    leftovers: list[str] = field(default_factory=list)


class _Listeners:
    """UDP and TCP listeners on 127.0.0.1 (case 20's port range), an abstract and a pathname unix socket: all
    must receive nothing."""

    def __init__(self) -> None:
        self.socks: list[tuple[str, socket.socket]] = []
        for port in range(47800, 47900, 7):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    s.close()
                    continue
                if kind == socket.SOCK_STREAM:
                    s.listen()
                self.socks.append((f"{'udp' if kind == socket.SOCK_DGRAM else 'tcp'}:{port}", s))
        for where in ("\0llmc-hostile", "/tmp/llmc-hostile.sock"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):
                if not where.startswith("\0"):
                    Path(where).unlink(missing_ok=True)
                s.bind(where)
                self.socks.append((where.replace("\0", "@"), s))

    def received(self) -> list[str]:
        got = []
        for name, s in self.socks:
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                if name.startswith("tcp"):
                    s.accept()
                else:
                    s.recv(100)
                got.append(name)
            s.close()
        Path("/tmp/llmc-hostile.sock").unlink(missing_ok=True)
        return got


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts or p.name in ("report.json", ".benchmarks") or ".benchmarks" in p.parts:
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GradingRun, Evidence]:
    tmp = tmp_path_factory.mktemp("hostile")
    secret = "canary-" + os.urandom(8).hex()
    CANARY.write_text(secret)
    for m in MARKERS:
        m.unlink(missing_ok=True)
    FIFO.unlink(missing_ok=True)
    os.mkfifo(FIFO)  # git cannot hold one: made for the run, removed after it
    listeners = _Listeners()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "llmc-bystander"])
    temp = tmp_path_factory.mktemp("grader-temp")  # the grading run's temp folder: what it leaves is a leftover
    watched = {"corpus": HOSTILE, "reference": REPO / "reference" / "backwards", "grader cwd": tmp}
    try:
        before = {k: tree_digest(v) for k, v in watched.items()}
        (tmp / "bystander.json").write_text('{"untouched": true}\n')
        before["grader cwd"] = tree_digest(tmp)
        pids_before = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        seen_before = _proc_view(bystander.pid)
        mounts_before = Path("/proc/self/mountinfo").read_text()
        os.environ["TMPDIR"] = str(temp)
        try:
            run = grade(
                [HOSTILE, REPO / "reference"],
                tmp,
                suites=["backwards"],
                extra=["--llm-timeout", "3", "--llm-memory", "256", "-n", "2"],
            )
        finally:
            del os.environ["TMPDIR"]
        after = {k: tree_digest(v) for k, v in watched.items()}
        changed = {k: sorted(p.name for p in v.iterdir()) for k, v in watched.items() if before[k] != after[k]}
        survivors = {
            int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in pids_before and _is_sleep_600(p)
        }
        evidence = Evidence(changed, survivors, secret, listeners.received(), (seen_before, _proc_view(bystander.pid)))
        evidence.leftovers = [str(p) for p in temp.iterdir() if not p.name.startswith("pytest-of-")]
        evidence.leftovers += [str(m) for m in MARKERS if m.exists()]
        if Path("/proc/self/mountinfo").read_text() != mounts_before:
            evidence.leftovers.append("a mount appeared in the grader's mount namespace")
    finally:
        bystander.kill()
        bystander.wait()
        FIFO.unlink(missing_ok=True)
        CANARY.unlink(missing_ok=True)
    return run, evidence


def _proc_view(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    return Path(f"/proc/{pid}/limits").read_text() + f"stopped {stat[2] in 'Tt'} nice {stat[18]}"


def _is_sleep_600(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00600\x00"
    except OSError:
        return False


def test_session_completes_with_tests_failed(corpus_run: tuple[GradingRun, Evidence]) -> None:
    run, _ = corpus_run
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout[-4000:]
    assert "INTERNALERROR" not in run.stdout
    assert {s["name"] for s in run.report["submissions"]} >= set(EXPECTED) | {"reference"}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case_verdict(case: str, corpus_run: tuple[GradingRun, Evidence]) -> None:
    run, _ = corpus_run
    results = run.outcomes(case)
    key, allowed = EXPECTED[case]
    outcome, category, message = results[KEY_TEST]
    if key == "passed":
        failed = {t: r for t, r in results.items() if r[0] == "failed"}
        assert not failed, f"{case} should pass but: {failed}"
        return
    assert outcome == "failed" and category == key, f"{case}: {KEY_TEST} gave {outcome}/{category}: {message}"
    for test, (o, c, m) in results.items():
        assert o != "failed" or c in allowed, f"{case}: {test} failed as {c}, expected one of {allowed}: {m}"


def test_reference_verdicts_unchanged_by_hostile_neighbours(corpus_run: tuple[GradingRun, Evidence]) -> None:
    run, _ = corpus_run
    results = run.outcomes("reference")
    assert results and all(o == "passed" for o, _, _ in results.values()), results


def test_nothing_outside_the_temp_copies_changed(corpus_run: tuple[GradingRun, Evidence]) -> None:
    _, seen = corpus_run
    assert not seen.changed, f"hostile submissions changed: {sorted(seen.changed)}"


def test_no_child_process_survives(corpus_run: tuple[GradingRun, Evidence]) -> None:
    _, seen = corpus_run
    assert not seen.survivors, f"{len(seen.survivors)} 'sleep 600' processes survived the run"


@pytest.mark.skipif(not ISOLATED, reason="no namespaces on this host: reads and network are not isolated")
def test_nothing_read_outside_reached_any_report(corpus_run: tuple[GradingRun, Evidence]) -> None:
    """Case 19 and 25: the canary (made for this run, outside every submission) appears nowhere."""
    run, seen = corpus_run
    assert seen.secret not in run.stdout and seen.secret not in json.dumps(run.report)


@pytest.mark.skipif(not ISOLATED, reason="no namespaces on this host: reads and network are not isolated")
def test_listeners_received_nothing(corpus_run: tuple[GradingRun, Evidence]) -> None:
    """Case 20: nothing reached a UDP, TCP, abstract or pathname unix socket of the grading machine."""
    _, seen = corpus_run
    assert not seen.received, f"delivered to: {seen.received}"


@pytest.mark.skipif(not ISOLATED, reason="no pid namespace on this host")
def test_an_unrelated_process_is_untouched(corpus_run: tuple[GradingRun, Evidence]) -> None:
    """Case 21: the limits, state and niceness of a process the run does not own are what they were."""
    _, seen = corpus_run
    assert seen.bystander[0] == seen.bystander[1] and "stopped False" in seen.bystander[1], seen.bystander


def test_no_state_or_temp_folder_is_left(corpus_run: tuple[GradingRun, Evidence]) -> None:
    """Case 22 (markers in /tmp, /dev/shm, /dev) and every case: nothing left in the grader's temp folder, and
    no mount in the grader's mount namespace."""
    _, seen = corpus_run
    assert not seen.leftovers, seen.leftovers


def test_huge_frame_is_refused_from_its_length(corpus_run: tuple[GradingRun, Evidence]) -> None:
    """Case 24: an 8 GiB frame is refused from its announced length, in one line, well within the limit."""
    run, _ = corpus_run
    _, category, message = run.outcomes("24_huge_frame")[KEY_TEST]
    assert category == "memory" and "refused before reading it" in message, message


def test_parse_error_is_one_clear_line(corpus_run: tuple[GradingRun, Evidence]) -> None:
    run, _ = corpus_run
    notes = [ln for ln in run.stdout.splitlines() if "layernorm_draft.py does not parse" in ln]
    assert len(notes) == 1 and "line 1" in notes[0], notes


@pytest.mark.parametrize(
    ("case", "expected"), [("10_hidden_nxn", "memory"), ("23_forge_protocol", "memory"), ("26_spot_rows", "wrong")]
)
def test_flash_attention_memory_test_cannot_be_gamed(case: str, expected: str, tmp_path: Path) -> None:
    """Case 10: tracemalloc.stop() cannot hide an N x N matrix from a probe that reads the memory from outside.
    Case 23: neither can a helper process holding it, after a forged end-of-measurement frame. Case 26: the
    rows spot-checked are chosen after the result arrives, so computing only the rows the driver names fails."""
    if case == "23_forge_protocol" and not isolation.probe().cgroup:
        pytest.skip("no cgroup here: helper processes are only sampled")
    run = grade([HOSTILE / case], tmp_path, suites=["flash_attention"], extra=["-k", "no_nxn"])
    outcome, category, message = run.outcomes(case)["test_no_nxn_allocation"]
    assert (outcome, category) == ("failed", expected), message


def test_loud_child_output_does_not_grow_the_grader(tmp_path: Path) -> None:
    """Case 7 in-process: 200 MB of child output leaves the grading process's memory about where it was."""
    import numpy as np

    from pytest_llmchallenges import processes
    from pytest_llmchallenges.calls import Sandbox

    folder = tmp_path / "sub" / "backwards"
    folder.mkdir(parents=True)
    (folder / "sol.py").write_text(
        "import sys\ndef entry(x):\n    for _ in range(100):\n        sys.stdout.write('x' * (1 << 20))\n"
        "        sys.stderr.write('y' * (1 << 20))\n    return x * 2\n"
    )
    sb = Sandbox("backwards", folder, 60)
    sb.run(selfcheck.call_entry, 1)  # warm-up: threads, imports
    before = processes.status_field(os.getpid(), "VmRSS") or 0
    assert sb.run(selfcheck.call_entry, np.int64(21)).value == 42
    grown = (processes.status_field(os.getpid(), "VmRSS") or 0) - before
    assert grown < 8 << 20, f"the grader grew by {grown / 2**20:.1f} MiB"


def test_grading_is_deterministic(tmp_path: Path) -> None:
    """The same folders graded serially and with -n 2 give byte-identical JSON, crash and wrong verdicts
    included (reports hold no timings, and messages carry no addresses, pids or measured sizes)."""
    subs = [REPO / "reference", *(HOSTILE / c for c in ("01_exit_at_import", "03_segfault", "09_patch_numpy"))]
    suites = ["backwards", "kv", "dflash_verify"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    serial = grade(subs, tmp_path / "a", suites=suites)
    parallel = grade(subs, tmp_path / "b", suites=suites, extra=["-n", "2"])
    assert serial.report["submissions"], serial.stdout[-3000:]
    assert serial.report == parallel.report


def test_a_run_seed_defeats_known_inputs(tmp_path: Path) -> None:
    """Case 27 recomputes the default run's inputs from the public package: it passes under the default seed
    (the threat is real) and fails under --llm-seed, which changes every test's inputs."""
    outcomes = []
    for extra in ([], ["--llm-seed", "7"]):
        (tmp_path / str(len(outcomes))).mkdir()
        run = grade(
            [HOSTILE / "27_known_inputs"],
            tmp_path / str(len(outcomes)),
            suites=["backwards"],
            extra=["-k", "gradients_match", *extra],
        )
        outcomes.append(run.outcomes("27_known_inputs")[KEY_TEST][:2])
    assert outcomes[0][0] == "passed" and outcomes[1] == ("failed", "wrong"), outcomes
