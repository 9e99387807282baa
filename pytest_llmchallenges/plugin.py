"""The pytest plugin: options, markers, collection of the packaged suites, verdict categories, reports.

Inert unless a submission is configured (``--llm-submission``, ``--llm-reference`` or their ini keys): it is
installed into environments that run other projects' tests and must not touch them.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from . import capabilities, fixtures, reports
from .challenges import CHALLENGE_NAMES, CHALLENGES, DIFFICULTIES
from .grading import GradingFailure
from .sandboxed import llmc_scan
from .submissions import Submission, SubmissionPathError, discover, reference_root

SUITES_DIR = Path(__file__).resolve().parent / "suites"
CAPABILITY_MARKERS = {
    "gpu": "needs a CUDA GPU and CuPy; skipped with one line where absent",
    "nvcc": "needs nvcc (or CuPy's NVRTC) to compile CUDA; skipped where absent",
    "mlx": "needs MLX (mlx[cpu] on Linux); skipped where absent",
    "slow": "takes long; skipped with --llm-fast",
    "perf": "efficiency measurement, never part of the grade (docs/efficiency.md); skipped with --llm-fast",
}
HELP = {
    "submission": "a model's submission folder (with challenge subfolders), or a folder of such folders; repeatable",
    "report": "write the grade report to PATH; format by extension: .json, .md, .html; repeatable",
    "timeout": "seconds allowed per call into a submission (default: each challenge's own)",
    "memory": "MiB of resident memory allowed per call into a submission, its children included (default 4096)",
    "reference": "grade the reference solutions shipped inside the installed package",
    "fast": "skip tests marked slow",
}
_GRADER = "llmchallenges-grader"
TEST_TIMEOUT_CALLS = 10  # a grading test may take as long as this many calls at the challenge's limit
_FINAL = pytest.StashKey[tuple[str, str, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmchallenges", "grading LLM challenge submissions")
    group.addoption("--llm-submission", action="append", default=[], metavar="PATH", help=HELP["submission"])
    group.addoption("--llm-report", action="append", default=[], metavar="PATH", help=HELP["report"])
    group.addoption("--llm-timeout", type=float, default=None, metavar="SECONDS", help=HELP["timeout"])
    group.addoption("--llm-memory", type=float, default=None, metavar="MIB", help=HELP["memory"])
    group.addoption("--llm-reference", action="store_true", default=None, help=HELP["reference"])
    group.addoption("--llm-fast", action="store_true", default=None, help=HELP["fast"])
    parser.addini("llm_submission", HELP["submission"], type="paths", default=[])
    parser.addini("llm_report", HELP["report"], type="paths", default=[])
    parser.addini("llm_timeout", HELP["timeout"], default="")
    parser.addini("llm_memory", HELP["memory"], default="")
    parser.addini("llm_reference", HELP["reference"], type="bool", default=False)
    parser.addini("llm_fast", HELP["fast"], type="bool", default=False)


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


def _submission_paths(config: pytest.Config) -> list[Path]:
    cli = config.getoption("llm_submission")
    paths = [Path(p) for p in cli] if cli else [Path(p) for p in config.getini("llm_submission")]
    if _flag(config, "llm_reference"):
        paths.append(reference_root())
    return paths


def _register_fixtures(config: pytest.Config) -> None:
    """The suites' fixtures exist only where they are needed: an inert plugin adds no fixture names."""
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "llmchallenges-fixtures")


def pytest_configure(config: pytest.Config) -> None:
    for difficulty in DIFFICULTIES:
        names = ", ".join(c.name for c in CHALLENGES.values() if c.difficulty == difficulty)
        config.addinivalue_line("markers", f"{difficulty}: challenges of difficulty {difficulty} ({names})")
    for name, c in CHALLENGES.items():
        config.addinivalue_line("markers", f"{name}: the {name} challenge: {c.summary}")
    for name, text in CAPABILITY_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        paths = _submission_paths(config)
        submissions = discover(paths) if paths else []
    except SubmissionPathError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not submissions:
        return
    config.pluginmanager.register(Grader(config, submissions), _GRADER)
    _register_fixtures(config)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITES_DIR)]


def _state(config: pytest.Config) -> Grader | None:
    return config.pluginmanager.get_plugin(_GRADER)


def _challenge(obj: Any) -> str | None:
    module = getattr(obj, "module", None)
    name = getattr(module, "CHALLENGE", None)
    return name if name in CHALLENGES else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    if state is None:
        return []
    lines = []
    for sub in state.submissions:
        present = sub.challenges
        missing = [c for c in CHALLENGE_NAMES if c not in present]
        lines.append(
            f"llm-submission {sub.name}: {sub.path} ({len(present)} of {len(CHALLENGE_NAMES)} challenges"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + ")"
        )
    return lines


def parse_notes(submissions: list[Submission]) -> list[str]:
    """One line per submitted Python file that does not parse (the rest of its folder is still graded)."""
    return [
        f"note: {sub.name}/{c}/{file} does not parse ({err}); graded without it"
        for sub in submissions
        for c in sub.challenges
        for file, err in llmc_scan.scan_folder(sub.path / c).parse_errors.items()
    ]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    if SUITES_DIR in file_path.parents:  # a suite collected by path, without a submission: it skips cleanly
        _register_fixtures(parent.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _challenge(metafunc) is None:
        return
    state = _state(metafunc.config)
    if "submission" not in metafunc.fixturenames:
        metafunc.fixturenames.append("submission")
    subs: list[Submission | None] = list(state.submissions) if state else [None]
    metafunc.parametrize("submission", subs, ids=[s.name if s else "no-submission" for s in subs], indirect=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    fast = _flag(config, "llm_fast")
    has_timeout_plugin = config.pluginmanager.hasplugin("timeout")
    for item in items:
        name = _challenge(item)
        if name is None:
            continue
        item.add_marker(CHALLENGES[name].difficulty)
        item.add_marker(name)
        if has_timeout_plugin and item.get_closest_marker("timeout") is None:
            # a safety net over the per-call limits: no grading test can hang the session
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_CALLS * CHALLENGES[name].timeout))
        for cap in ("gpu", "nvcc", "mlx"):
            if item.get_closest_marker(cap) is not None and (reason := capabilities.missing(cap)):
                item.add_marker(pytest.mark.skip(reason=reason))
        if fast and item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.skip(reason="slow test skipped (--llm-fast)"))
        elif fast and item.get_closest_marker("perf") is not None:
            item.add_marker(pytest.mark.skip(reason="efficiency not measured (--llm-fast)"))


def _one_line(text: str, limit: int = 400) -> str:
    first = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


class _Verdict:
    """A failure shown as the grader's verdict (category, reason, child output) instead of our traceback."""

    def __init__(self, text: str, line: str) -> None:
        self.text = text
        self.reprcrash = SimpleNamespace(message=line, path="", lineno=0)

    def toterminal(self, tw: Any) -> None:
        for ln in self.text.splitlines():
            tw.line(ln, red=ln.startswith("["))

    def __str__(self) -> str:
        return self.text


def _classify(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[str, str]:
    if report.passed:
        return "ok", ""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return "skipped", _one_line(reason.removeprefix("Skipped: "))
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, GradingFailure):
        return exc.category, _one_line(f"{exc.reason}")
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        return "wrong", _one_line(str(exc))
    if report.when != "call":
        return "error", _one_line(f"grader error during {report.when}: {type(exc).__name__}: {exc}")
    return "error", _one_line(f"grader error: {type(exc).__name__}: {exc}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    name = _challenge(item)
    sub = getattr(getattr(item, "callspec", None), "params", {}).get("submission")
    if name is None or sub is None:
        return report
    category, message = _classify(report, call)
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, GradingFailure) and report.failed:
        report.longrepr = _Verdict(f"{item.nodeid}\n{exc}", f"[{exc.category}] {_one_line(exc.reason)}")
    final = item.stash.get(_FINAL, ("passed", "ok", ""))
    if report.outcome != "passed" and final[0] == "passed":
        final = (report.outcome, category, message)
    item.stash[_FINAL] = final
    outcome, category, message = final
    if outcome == "passed":
        notes = [str(v) for k, v in item.user_properties if k == fixtures.NOTE_KEY]
        message = _one_line("; ".join(notes), 600) if notes else ""
    report.user_properties = [
        *[(k, v) for k, v in item.user_properties if k != fixtures.NOTE_KEY],
        ("submission", sub.name),
        ("challenge", name),
        ("difficulty", CHALLENGES[name].difficulty),
        ("category", category),
        ("message", message),
        ("llm_outcome", outcome),
        ("llm_test", getattr(item, "originalname", item.name)),
        ("llm_path", str(sub.path)),
    ]
    return report


class Grader:
    """Collects every graded test's verdict (on the controller, also under xdist) and writes the reports."""

    def __init__(self, config: pytest.Config, submissions: list[Submission]) -> None:
        self.config = config
        self.submissions = submissions
        self.records: dict[str, reports.TestRecord] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        props = dict(report.user_properties)
        if "llm_outcome" not in props:
            return
        self.records[report.nodeid] = reports.TestRecord(
            nodeid=report.nodeid,
            test=str(props["llm_test"]),
            submission=str(props["submission"]),
            path=str(props["llm_path"]),
            challenge=str(props["challenge"]),
            outcome=str(props["llm_outcome"]),
            category=str(props["category"]),
            message=str(props["message"]),
        )

    def report(self) -> dict | None:
        if hasattr(self.config, "workerinput") or not self.records:
            return None
        return reports.build(self.submissions, list(self.records.values()))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data = self.report()
        if data is None:
            return
        cli = self.config.getoption("llm_report")
        targets = [Path(p) for p in cli] if cli else [Path(p) for p in self.config.getini("llm_report")]
        for target in targets:
            try:
                reports.write(data, target)
            except (OSError, ValueError) as exc:
                raise pytest.UsageError(f"--llm-report {target}: {exc}") from None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        data = self.report()
        if data is None:
            return
        terminalreporter.section("LLM challenge grades")
        for line in reports.terminal_lines(data) + parse_notes(self.submissions):
            terminalreporter.write_line(line)
