"""The pytest plugin: options, markers, collection of the packaged suites, verdict categories, reports.

Inert unless a submission is configured (``--llm-submission``, ``--llm-reference`` or their ini keys): it is
installed into environments that run other projects' tests and must not touch them.
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import ReprEntryNative, ReprExceptionInfo, ReprFileLocation, ReprTraceback

from . import capabilities, entrypoints, fixtures, hooks, isolation, registry, reports
from .challenges import CHALLENGE_NAMES, CHALLENGES, DIFFICULTIES
from .child import llmc_scan
from .grading import GradingFailure
from .scoring import SCORE_MODES
from .submissions import Submission, SubmissionPathError, discover, reference_root

CAPABILITY_MARKERS = {
    "gpu": "needs a CUDA GPU and CuPy; skipped with one line where absent",
    "nvcc": "needs nvcc (or CuPy's NVRTC) to compile CUDA; skipped where absent",
    "mlx": "needs MLX (mlx[cpu] on Linux); skipped where absent",
    "slow": "takes long; skipped with --llm-fast",
    "perf": "efficiency measurement, never part of the grade (docs/efficiency.md); skipped with --llm-fast",
}
# One row per option: its name (the ini key is the same with "_"), its argparse keywords, the ini type, help.
# Every value is checked at start-up (_check_options), the ini key's as the option's.
OPTIONS: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("submission", {"action": "append", "default": [], "metavar": "PATH"}, "paths",
     "a model's submission folder (with challenge subfolders), or a folder of such folders; repeatable"),
    ("report", {"action": "append", "default": [], "metavar": "PATH"}, "paths",
     "write the grade report to PATH; format by extension: .json, .md, .html; repeatable"),
    ("timeout", {"default": None, "metavar": "SECONDS"}, None,
     "seconds allowed per call into a submission, a positive number (default: each challenge's own)"),
    ("memory", {"default": None, "metavar": "MIB"}, None,
     "MiB of resident memory allowed per call into a submission, its children included (default 4096)"),
    ("score", {"default": None, "metavar": "all|answered"}, None,
     "overall score over all challenges, a missing one scoring 0 (all, the default), or over answered ones"),
    ("reference", {"action": "store_true", "default": None}, "bool",
     "grade the reference solutions shipped inside the installed package"),
    ("fast", {"action": "store_true", "default": None}, "bool", "skip tests marked slow"),
    ("seed", {"default": None, "metavar": "N|random"}, None,
     "seed of every test's inputs (default 0: fixed inputs; 'random' draws one); recorded in the reports"),
    ("isolation", {"default": None, "metavar": "auto|strict|off"}, None,
     "auto: isolate as far as the host allows; strict: refuse to grade without full isolation; off"),
]  # fmt: skip
HELP = {name: text for name, _, _, text in OPTIONS}
_GRADER = "llmchallenges-grader"
TEST_TIMEOUT_CALLS = 10  # a grading test may take as long as this many calls at the challenge's limit
GRADER_FAULT_EXIT = 3  # pytest exit status when the grader itself failed (never the models' fault)
DETAIL_LINES = 30  # lines of detail (the submission's output tail) under a verdict's one line
_FINAL = pytest.StashKey[tuple[str, str, str, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmchallenges", "grading LLM challenge submissions")
    for name, kwargs, ini_type, text in OPTIONS:
        group.addoption(f"--llm-{name}", help=text, **kwargs)
        default = kwargs["default"] if ini_type == "paths" else (False if ini_type == "bool" else "")
        parser.addini(f"llm_{name}", text, type=ini_type, default=default)  # type: ignore[arg-type]


def _positive(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


VALUE_OPTIONS = {
    f"--llm-{name}" for name, kwargs, _, _ in OPTIONS if "action" not in kwargs or kwargs["action"] == "append"
}


def _check_separate_values(config: pytest.Config) -> None:
    """pytest reads its rootdir, ini file and test paths before any plugin's options are known, so an option
    value written apart from its option (``--llm-report /tmp/x.json``) can be taken there for a test path: the
    run then collects or roots itself somewhere else and silently grades nothing, or without the project's
    settings. Where that happened, it is a usage error naming the fix (``=``)."""
    args = [str(a) for a in config.invocation_params.args]
    stray = [(a, v) for a, v in itertools.pairwise(args) if a in VALUE_OPTIONS and not v.startswith("-")]
    if not stray:
        return
    taken = {str(Path(a).resolve()) for a in config.args}
    moved = False
    try:  # what pytest would have chosen without the stray values (private API: no verdict if it changed)
        from _pytest.config.findpaths import determine_setup

        values = {v for _, v in stray}
        root, ini, *_ = determine_setup(
            inifile=config.option.inifilename,
            override_ini=config.option.override_ini,
            args=[a for a in args if not a.startswith("-") and a not in values],
            rootdir_cmd_arg=config.option.rootdir or None,
            invocation_dir=config.invocation_params.dir,
        )
        moved = (root, ini) != (config.rootpath, config.inipath)
    except Exception:
        pass
    for option, value in stray:
        if moved or str((config.invocation_params.dir / value).resolve()) in taken:
            raise pytest.UsageError(
                f"{option} {value}: write {option}={value} (with '='); pytest read {value!r} as a test path "
                f"before this plugin's options were known (rootdir {config.rootpath})"
            )


def _check_options(config: pytest.Config) -> None:
    """Every value checked before anything runs: one line and a usage error (exit 4) for the first bad one."""
    _check_separate_values(config)
    for name in ("timeout", "memory"):
        cli, ini = config.getoption(f"llm_{name}"), config.getini(f"llm_{name}")
        where, value = (f"--llm-{name}", cli) if cli is not None else (f"ini llm_{name}", ini)
        if value not in (None, "") and not _positive(value):
            raise pytest.UsageError(f"{where} {value!r}: must be a positive number")
    for name, choices in (("score", SCORE_MODES), ("isolation", isolation.MODES)):
        cli, ini = config.getoption(f"llm_{name}"), config.getini(f"llm_{name}")
        where, value = (f"--llm-{name}", cli) if cli is not None else (f"ini llm_{name}", ini)
        if value not in ("", *choices):
            raise pytest.UsageError(f"{where} {value!r}: must be one of {', '.join(choices)}")
    where = "--llm-report" if config.getoption("llm_report") else "ini llm_report"
    for target in _report_targets(config):
        reason = reports.check_target(target)
        if reason:
            raise pytest.UsageError(f"{where} {target}: {reason}")


def _report_targets(config: pytest.Config) -> list[Path]:
    cli = config.getoption("llm_report")
    return [Path(p) for p in cli] if cli else [Path(p) for p in config.getini("llm_report")]


def score_mode(config: pytest.Config) -> str:
    return str(config.getoption("llm_score") or config.getini("llm_score") or "all")


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


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


_REGISTRY = pytest.StashKey[registry.Registry]()


def pytest_configure(config: pytest.Config) -> None:
    try:  # third-party challenges first: they are markers, suites and report columns like the built-in ones
        config.stash[_REGISTRY] = registry.load(config.hook)
    except registry.RegistryError as exc:
        raise pytest.UsageError(str(exc)) from None
    for difficulty in DIFFICULTIES:
        names = ", ".join(c.name for c in CHALLENGES.values() if c.difficulty == difficulty)
        config.addinivalue_line("markers", f"{difficulty}: challenges of difficulty {difficulty} ({names})")
    for name, c in CHALLENGES.items():
        config.addinivalue_line("markers", f"{name}: the {name} challenge: {c.summary}")
    for name, text in CAPABILITY_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    _check_options(config)
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
        config.args = [str(p) for p in registry.suite_paths()]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REGISTRY in config.stash:  # a run's registrations end with it (pytester runs many in one process)
        config.stash[_REGISTRY].clear()


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
        missing = [c for c in CHALLENGE_NAMES if c not in sub.challenges]
        why = {c: "no folder" if sub.challenge_dir(c) is None else "scaffold files only" for c in missing}
        lines.append(
            f"llm-submission {sub.name}: {sub.path} ({len(CHALLENGE_NAMES) - len(missing)}/{len(CHALLENGE_NAMES)}"
            " answered" + (f"; missing: {', '.join(f'{c} ({why[c]})' for c in missing)}" if missing else "") + ")"
        )
    lines.append("llm-" + reports.score_line({"score_mode": score_mode(config)}, len(CHALLENGE_NAMES)))
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
    # a suite collected by path, without a submission: it skips cleanly
    if registry.is_suite(file_path):
        _register_fixtures(parent.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (challenge := _challenge(metafunc)) is None:
        return
    if faults := entrypoints.suite_faults(metafunc.module, challenge):  # a grader fault, found at collection
        raise pytest.Collector.CollectError("grader fault: " + "; ".join(faults))
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
        for cap in CHALLENGES[name].needs:  # a registered challenge's capability needs
            item.add_marker(cap)
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


def verdict_repr(line: str, detail: str = "", where: tuple[str, int | None] = ("", None)) -> ReprExceptionInfo:
    """A failure shown as the grader's one line ("[category] reason") and a bounded detail (the submission's
    output tail), never the suite's source. A real exception repr, so that xdist carries it to the controller
    unchanged and JUnit's message is this line in serial and ``-n`` runs alike."""
    tail = [ln for ln in detail.splitlines() if ln.strip()][-DETAIL_LINES:]
    lines = [line + "\n", *(ln + "\n" for ln in tail)]
    crash = ReprFileLocation(where[0], (where[1] or 0) + 1, line)  # --tb=line shows "suite.py:N: [category] ..."
    return ReprExceptionInfo(ReprTraceback([ReprEntryNative(lines)], None, "native"), crash)


def _skip_verdict(reason: str) -> tuple[str, str, str]:
    """(category, message, capability) of a skip: a missing answer, a capability this machine lacks, or other."""
    reason = _one_line(reason.removeprefix("Skipped: "))
    if reason.startswith("missing: "):
        return "missing", reason, ""
    cap = capabilities.of_skip(reason)
    return ("capability", reason, cap) if cap else ("", reason, "")


def _classify(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[str, str, str, str]:
    """(category, message, capability, detail) of one phase's report."""
    if report.passed:
        return "", "", "", ""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return (*_skip_verdict(reason), "")
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, GradingFailure):
        return exc.category, _one_line(exc.reason), "", exc.detail
    if isinstance(exc, pytest.fail.Exception) and str(exc).startswith("Timeout"):
        return "timeout", f"the test ran past its safety limit ({_one_line(str(exc))})", "", ""
    if isinstance(exc, (AssertionError, pytest.fail.Exception)) and report.when == "call":
        return "wrong", _one_line(str(exc)), "", ""  # the suite's message alone: no source, no introspection
    # anything else is the grader's own fault: the plugin, a suite, an oracle, a fixture or its cleanup
    where = "" if report.when == "call" else f" during {report.when}"
    trace = "".join(traceback.format_exception(exc)) if exc is not None else ""
    return "grader", _one_line(f"grader fault{where}: {type(exc).__name__}: {exc}"), "", trace


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    name = _challenge(item)
    sub = getattr(getattr(item, "callspec", None), "params", {}).get("submission")
    if name is None or sub is None:
        return report
    category, message, capability, detail = _classify(report, call)
    if report.skipped and (missing := sub.missing_reason(name)):  # a capability skip of an unanswered challenge
        category, message, capability = "missing", missing, ""
    if report.failed:
        report.longrepr = verdict_repr(f"[{category}] {message}", detail, item.location[:2])
    final = item.stash.get(_FINAL, ("passed", "", "", ""))
    if report.outcome != "passed" and final[0] == "passed":
        final = (report.outcome, category, message, capability)
    item.stash[_FINAL] = final
    outcome, category, message, capability = final
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
        ("llm_capability", capability),
        ("llm_perf", item.get_closest_marker("perf") is not None),  # efficiency: never a correctness count
        ("llm_test", getattr(item, "originalname", item.name)),
        ("llm_path", str(sub.path)),
    ]
    return report


def _record(report: pytest.TestReport, props: dict[str, Any], **override: str) -> reports.TestRecord:
    efficiency: dict[str, Any] = {}
    for key, value in report.user_properties:
        if key == "llm_efficiency" and isinstance(value, dict):
            efficiency.update(value)
    fields = {
        k: props.get(f, "") for k, f in (("outcome", "llm_outcome"), ("category", "category"), ("message", "message"))
    }
    fields.update(override)
    return reports.TestRecord(
        nodeid=report.nodeid,
        test=str(props["llm_test"]),
        submission=str(props["submission"]),
        path=str(props["llm_path"]),
        challenge=str(props["challenge"]),
        outcome=str(fields["outcome"]),
        category=str(fields["category"]),
        message=str(fields["message"]),
        capability=str(props.get("llm_capability", "")),
        efficiency=efficiency,
        perf=bool(props.get("llm_perf", False)),
    )


class Grader:
    """Collects every graded test's verdict (on the controller, also under xdist) and writes the reports."""

    def __init__(self, config: pytest.Config, submissions: list[Submission]) -> None:
        self.config = config
        self.submissions = submissions
        self.records: dict[str, reports.TestRecord] = {}
        self.seen: dict[str, dict[str, Any]] = {}  # a graded test's properties, from its first phase's report
        self.incomplete = False
        self.interrupted = False
        self.write_errors: list[str] = []
        self.collect_faults: list[dict[str, str]] = []  # suites that failed collection for the grader's fault
        self.data: dict[str, Any] | None = None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        text = str(report.longrepr) if report.failed else ""
        line = next((ln.strip() for ln in text.splitlines() if "grader fault" in ln), "")
        if line:
            self.collect_faults.append({"nodeid": report.nodeid, "message": _one_line(line.removeprefix("E   "))})

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest stops on collection errors with a KeyboardInterrupt of its own: not the user's
        self.interrupted = not isinstance(excinfo.value, pytest.Session.Interrupted)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props: dict[str, Any] | None = dict(report.user_properties)
        if props and "llm_outcome" in props:
            self.seen.setdefault(report.nodeid, props)
            if report.when == "teardown":
                self.records[report.nodeid] = _record(report, props)
            return
        if not report.failed or report.when in ("setup", "call", "teardown"):
            return
        props = self.seen.get(report.nodeid) or self._guess(report.nodeid)
        if props:  # xdist (when="???"): the worker running this test died
            line = f"[grader] {_one_line(str(report.longrepr))}: the grading process died, not graded"
            report.longrepr = verdict_repr(line, "", (report.location[0], None))
            # a failed test in every report (xdist says when="???", which JUnit writes as a setup error)
            report.when = "call"  # type: ignore[assignment]
            report.location = (report.location[0], None, report.nodeid.split("::", 1)[-1])
            self.records[report.nodeid] = _record(report, props, outcome="failed", category="grader", message=line[9:])

    def _guess(self, nodeid: str) -> dict[str, Any] | None:
        """A graded test's properties from its node id alone (a worker that died before the test's first
        report): a packaged suite's file names the challenge, the parameter id the submission."""
        path, _, rest = nodeid.partition("::")
        challenge = Path(path).stem.removeprefix("test_")
        params = rest.partition("[")[2].removesuffix("]")
        subs = [s for s in self.submissions if s.name == params or f"-{s.name}-" in f"-{params}-"]
        if challenge not in CHALLENGES or len(subs) != 1:
            return None
        test = rest.partition("[")[0].rpartition("::")[2]
        return {"llm_test": test, "submission": subs[0].name, "llm_path": str(subs[0].path), "challenge": challenge}

    def run_info(self) -> dict[str, Any]:
        """What the run was: two runs on machines with different capabilities differ here."""
        entry = isolation.run_entry(self.config)
        return {
            "capabilities": capabilities.present(),
            "isolation": str(entry["isolation"]).removeprefix("isolation: "),
            "seed": entry["seed"],
            "incomplete": self.incomplete,
        }

    def report(self) -> dict | None:
        if hasattr(self.config, "workerinput") or not self.records:
            return None
        records = list(self.records.values())
        return reports.build(self.submissions, records, score_mode(self.config), self.run_info(), self.collect_faults)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return
        self.incomplete = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        self.data = data = self.report()
        for target in _report_targets(self.config):
            try:
                if data is not None:
                    reports.write(data, target)
            except (OSError, ValueError) as exc:
                self.write_errors.append(f"ERROR: --llm-report {target}: {exc}")
        faults = self.data["grader_faults"] if self.data is not None else self.collect_faults
        usual = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        if faults and (session.exitstatus in usual or (self.collect_faults and not self.interrupted)):
            session.exitstatus = GRADER_FAULT_EXIT  # a collection error of ours (exit 2 otherwise) is ours too
        elif self.write_errors and session.exitstatus in usual:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        data = self.data
        if data is None and not self.collect_faults:
            return
        terminalreporter.section("LLM challenge grades")
        if data is not None:
            lines = reports.terminal_lines(data, parse_notes(self.submissions))
        else:
            lines = ["nothing graded", *reports.fault_lines(self.collect_faults)]
        for line in lines:
            terminalreporter.write_line(line, red=line.startswith("GRADER"))
        faults = data["grader_faults"] if data is not None else self.collect_faults
        if faults:
            terminalreporter.write_line(
                f"exit status {GRADER_FAULT_EXIT}: the grader failed on {len(faults)} test(s) or suite(s); "
                "these were not charged to any model",
                red=True,
            )
        for line in self.write_errors:
            terminalreporter.write_line(line, red=True)
