"""Unit tests of the adaptation toolkit (sandboxed/llmc_api, llmc_bind, llmc_probe, llmc_entry): fast, in process.

Candidates by role, binding by name and by position, each outcome of the probe rule (a submission-frame
exception on a declared call vs. one on a guess), and declared entry points checked at collection.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges import entrypoints
from pytest_llmchallenges.challenges import BUILTIN, CHALLENGES
from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards
from pytest_llmchallenges.child import llmc_drive_selfcheck as selfcheck
from pytest_llmchallenges.child import llmc_entry, llmc_probe
from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, Role, SubmissionError
from pytest_llmchallenges.child.llmc_bind import BindError, bind
from pytest_llmchallenges.child.llmc_errors import SubmissionExit, exc_line
from pytest_llmchallenges.child.llmc_probe import Attempt, first_working, guess
from tests.test_verdicts import load

ROLES = {
    "fwd": Role(prescribed=["layer_norm_forward"], patterns=[r"forward"], description="forward(x, gamma)"),
    "model": Role(prescribed=["Model"], patterns=[r"model"], kind="class"),
}


def make_sub(tmp_path: Path, files: dict[str, str]) -> Answer:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return Answer(tmp_path, ROLES)


# --- candidates ------------------------------------------------------------------------------------------------
def test_candidates_rank_prescribed_names_first_and_mark_them_documented(tmp_path: Path) -> None:
    sub = make_sub(
        tmp_path,
        {
            "a.py": "def my_forward(x, gamma):\n    return x\n\ndef layer_norm_forward(x, gamma):\n    return x\n",
            "b.py": "class Model:\n    pass\n\nclass OldModel:\n    pass\n",
        },
    )
    fwd = sub.candidates("fwd")
    assert [c.name for c in fwd] == ["layer_norm_forward", "my_forward"]
    assert [c.documented for c in fwd] == [True, False]
    assert [c.name for c in sub.candidates("model")] == ["Model", "OldModel"]


def test_classes_keeps_the_loadable_classes_and_skips_names(tmp_path: Path) -> None:
    """``sub.classes``: the classes among a role's first candidates; a name matching ``skip``, a function and a
    module that fails to import are passed over (the driver's guesses, never the answer's error)."""
    sub = make_sub(
        tmp_path,
        {
            "a.py": "class Model:\n    pass\n\nclass DraftModel:\n    pass\n\ndef model_fn():\n    return 1\n",
            "b.py": "raise ImportError('broken')\n\nclass OtherModel:\n    pass\n",
        },
    )
    assert [c.__name__ for c in sub.classes("model", skip=r"draft")] == ["Model"]
    assert "DraftModel" in [c.__name__ for c in sub.classes("model")]


def test_manifest_names_the_one_documented_candidate(tmp_path: Path) -> None:
    sub = make_sub(
        tmp_path,
        {
            "a.py": "def layer_norm_forward(x, gamma):\n    return x\n\ndef mine(x, gamma):\n    return 2 * x\n",
            "llmchallenge.toml": '[roles]\nfwd = "a.py:mine"\n',
        },
    )
    (cand,) = sub.candidates("fwd")
    assert (cand.name, cand.documented) == ("mine", True)
    assert cand.load()(3, None) == 6


# --- binding ---------------------------------------------------------------------------------------------------
PATTERNS = {"x": r"^(x|inp)$", "gamma": r"^(gamma|weight)$", "eps": r"eps"}


def test_bind_by_name_in_any_order_with_keywords_after_a_gap() -> None:
    def fn(weight, inp, bias=None, eps=1e-5):  # type: ignore[no-untyped-def]
        return weight, inp, eps

    b = bind(fn, {"x": 1, "gamma": 2, "eps": 3}, PATTERNS, ["x", "gamma", "eps"])
    assert (b.args, b.kwargs, b.by_position) == ((2, 1), {"eps": 3}, ())


def test_bind_fills_unknown_required_names_by_the_prompts_order_and_says_so() -> None:
    def fn(a, b, eps):  # type: ignore[no-untyped-def]
        return a, b, eps

    b = bind(fn, {"x": 1, "gamma": 2, "eps": 3}, PATTERNS, ["x", "gamma", "eps"])
    assert (b.args, b.by_position) == ((1, 2, 3), ("a", "b"))


def test_bind_positional_only_and_keyword_only_parameters() -> None:
    def fn(data, /, weight, *, eps, extra=None):  # type: ignore[no-untyped-def]
        return data, weight, eps

    b = bind(fn, {"x": 1, "gamma": 2, "eps": 3}, PATTERNS, ["x", "gamma", "eps"])
    assert (b.args, b.kwargs, b.by_position) == ((1, 2), {"eps": 3}, ("data",))


def test_bind_a_callable_without_a_signature_gets_no_arguments() -> None:
    assert bind(print, {"x": 1}, PATTERNS, ["x"]).args == ()


def test_bind_reusable_and_taken_values() -> None:
    def tiles(q, br, bc):  # type: ignore[no-untyped-def]
        return q, br, bc

    b = bind(tiles, {"q": 0, "tile": 4}, {"q": "^q$", "tile": "^b[rc]$"}, ["q", "tile"], reusable=("tile",))
    assert b.args == (0, 4, 4)

    def method(prompts, width):  # type: ignore[no-untyped-def]
        return prompts, width

    taken = {"beam"}  # given to the constructor already: never again by position
    b = bind(method, {"prompts": 1, "beam": 2, "n": 3}, {"prompts": "prompt"}, ["prompts", "beam", "n"], taken=taken)
    assert b.args == (1, 3)


def test_bind_without_a_value_for_a_required_parameter_is_an_interface_mismatch() -> None:
    def fn(x, mystery, other):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(BindError, match=r"mystery|other") as info:
        bind(fn, {"x": 1, "gamma": 2}, PATTERNS, ["x", "gamma"])
    assert isinstance(info.value, InterfaceError)


# --- the probe rule --------------------------------------------------------------------------------------------
BROKEN = """
def layer_norm_forward(x, gamma):
    return x[5]                # IndexError in the submission's own frame

def forward_fast(a, b):
    return a[5]                # the same bug, on a candidate found by pattern whose parameters are unknown names

def forward_ok(x, gamma):
    return x
"""


def _probe_with(sub: Answer, order: list[str], documented: set[str] | None = None) -> Any:
    def attempt(name: str) -> Attempt:
        cand = next(c for c in sub.candidates("fwd") if c.name == name)
        fn = cand.load()
        documented_here = cand.documented if documented is None else name in documented
        return Attempt(str(cand), lambda: fn, documented_here)

    def probe(fn: Any) -> Any:
        return sub.invoke(bind(fn, {"x": [1.0], "gamma": 2.0}, PATTERNS, ["x", "gamma"]))

    return first_working([attempt(n) for n in order], probe, lambda tried: sub.interface_error("fwd", tried))


def test_submission_frame_exception_on_a_declared_call_is_the_answers_error(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    with pytest.raises(SubmissionError, match="IndexError") as info:
        _probe_with(sub, ["layer_norm_forward", "forward_fast"])
    assert info.value.category == "error"
    assert 'File "a.py"' in info.value.detail
    assert "forward_fast" in str(info.value)  # what else was tried, as context


def test_name_bound_call_on_a_pattern_candidate_matches_the_role_too(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN.replace("layer_norm_forward", "my_forward")})
    with pytest.raises(SubmissionError, match="IndexError"):
        _probe_with(sub, ["my_forward"])


def test_exception_on_a_guessed_convention_is_a_failed_probe(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    with pytest.raises(InterfaceError) as info:
        _probe_with(sub, ["forward_fast"])  # (a, b) filled by position: the grader's guess, not the answer's API
    text = str(info.value)
    assert info.value.not_driven
    assert "a failed probe: parameters a, b bound by position" in text
    assert 'fix: add to llmchallenge.toml: [roles] fwd = "file.py:name"' in text


def test_guess_context_marks_any_call_a_guess(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    fn = sub.candidates("fwd")[0].load()

    def probe(f: Any) -> Any:
        with guess("cache passed back piece by piece"):
            return sub.call(f, [1.0], 2.0)

    with pytest.raises(InterfaceError, match="a failed probe: cache passed back piece by piece"):
        first_working([Attempt("a", lambda: fn, documented=True)], probe, lambda t: sub.interface_error("fwd", t))


def test_exception_before_the_submissions_code_runs_is_a_failed_probe(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    fn = sub.candidates("fwd")[0].load()
    probe = lambda f: sub.call(f, 1, 2, 3)  # noqa: E731 -- TypeError from the call itself: wrong argument count
    with pytest.raises(InterfaceError, match="raised before its code ran"):
        first_working([Attempt("a", lambda: fn, documented=True)], probe, lambda t: sub.interface_error("fwd", t))


def test_a_later_working_candidate_wins_over_an_earlier_error(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    fn, result = _probe_with(sub, ["layer_norm_forward", "forward_ok"])
    assert fn.__name__ == "forward_ok" and result == [1.0]


def test_positional_binding_of_a_documented_candidate_is_its_documented_signature(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    with pytest.raises(SubmissionError, match="IndexError"):
        _probe_with(sub, ["forward_fast"], documented={"forward_fast"})


def test_no_candidate_at_all_lists_the_definitions_and_the_fix(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": "def unrelated():\n    pass\n"})
    with pytest.raises(InterfaceError, match=r"fix: add to llmchallenge.*definitions found: a.py:unrelated\(\)"):
        sub.drive("fwd", lambda c: c.load(), lambda f: f())


def test_an_attempt_that_never_reaches_the_answer_is_a_failed_probe_with_its_type(tmp_path: Path) -> None:
    """An adapter the driver cannot build (a KeyError in the driver's own reading of an output) is noted with
    its type; the verdict is ``not_driven`` with every line tried."""
    sub = make_sub(tmp_path, {"a.py": BROKEN})

    def broken() -> Any:
        return {}["O"]

    attempts = [Attempt("first", broken), Attempt("second", lambda: None)]
    with pytest.raises(InterfaceError) as info:
        first_working(attempts, lambda a: {}["missing"], lambda t: sub.interface_error("fwd", t))
    assert info.value.not_driven
    assert "tried first: KeyError: 'O'; second: KeyError: 'missing'" in str(info.value)


def test_no_attempt_at_all_is_a_plain_interface_failure(tmp_path: Path) -> None:
    """Nothing matches the role: the answer lacks what the prompt asks for (``interface``), which is not the
    grader failing to drive something it found (``not_driven``)."""
    sub = make_sub(tmp_path, {"a.py": "X = 1\n"})
    with pytest.raises(InterfaceError) as info:
        first_working([], lambda a: a, lambda t: sub.interface_error("fwd", t))
    assert not info.value.not_driven


def test_at_most_max_attempts_are_tried(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    made: list[int] = []

    def attempt(n: int) -> Attempt:
        return Attempt(f"a{n}", lambda: made.append(n))

    def fail(_: Any) -> Any:
        raise InterfaceError("no")

    with pytest.raises(InterfaceError):
        first_working((attempt(n) for n in range(40)), fail, lambda t: sub.interface_error("fwd", t))
    assert made == list(range(llmc_probe.MAX_ATTEMPTS))


def test_a_submission_exit_is_never_swallowed_by_probing(tmp_path: Path) -> None:
    """sys.exit in the answer is a crash verdict: it passes through the probing loop, later attempts unmade."""
    sub = make_sub(tmp_path, {"a.py": "import sys\ndef layer_norm_forward(x, gamma):\n    sys.exit(3)\n"})
    fn = sub.candidates("fwd")[0].load()
    later: list[str] = []
    attempts = [Attempt("exits", lambda: fn, True), Attempt("later", lambda: later.append("made"))]
    with pytest.raises(SubmissionExit, match=r"sys.exit\(3\)"):
        first_working(attempts, lambda f: sub.call(f, 1, 2), lambda t: sub.interface_error("fwd", t))
    assert later == []


# --- calling conventions ---------------------------------------------------------------------------------------
CONVENTIONS = """
class Norm:
    def __init__(self, dim, eps=1e-5):
        self.dim = dim
        self.eps = eps

    def forward(self, inp, weight):
        return [v * weight for v in inp]

def layer_norm_forward(x, gamma):
    return x

def forward(a):
    return a

def test_forward(x, gamma):
    return x
"""

CONV_ROLES = {
    "fwd": Role(prescribed=["layer_norm_forward", "forward"], patterns=[r"forward"], min_params=2),
    "any": Role(patterns=[r"norm"], kind="any"),
    "layer": Role(prescribed=["Norm"], patterns=[r"norm"], kind="class", description="the Norm class"),
}


def _conv(tmp_path: Path, files: dict[str, str] | None = None) -> Answer:
    for name, text in (files or {"sol.py": CONVENTIONS}).items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return Answer(tmp_path, CONV_ROLES)


def test_candidates_rank_functions_over_methods_and_penalise_few_parameters(tmp_path: Path) -> None:
    sub = _conv(tmp_path)
    ranked = [(c.name, c.score) for c in sub.candidates("fwd")]
    assert ranked[0] == ("layer_norm_forward", 100)
    assert ("Norm.forward", 80) in ranked  # the prompt's name, on a method: ranked below a function
    assert ("forward", 50) in ranked  # the prompt's name, but one positional parameter of the two needed
    assert ("test_forward", 60) in ranked  # a pattern's match (the file's name, not the function's, says "test")
    assert "takes 1 positional parameters" in next(c.why for c in sub.candidates("fwd") if c.name == "forward")


def test_a_stale_looking_file_ranks_below_the_same_name_elsewhere(tmp_path: Path) -> None:
    sub = _conv(
        tmp_path,
        {
            "sol.py": "def layer_norm_forward(x, g):\n    return x\n",
            "sol_old.py": "def layer_norm_forward(x, g):\n    return 0\n",
        },
    )
    first, second = sub.candidates("fwd")
    assert (first.file, second.file) == ("sol.py", "sol_old.py")
    assert second.score == first.score - 30 and "old copy" in second.why


def test_a_role_of_any_kind_takes_classes_and_functions(tmp_path: Path) -> None:
    sub = _conv(tmp_path)
    assert {c.name for c in sub.candidates("any")} >= {"Norm", "layer_norm_forward"}
    assert [c.name for c in sub.candidates("layer")] == ["Norm"]


def test_a_method_is_driven_on_an_instance_with_its_arguments_bound_by_name(tmp_path: Path) -> None:
    sub = _conv(tmp_path)
    cls = sub.role("layer")
    method = cls(4).forward
    b = bind(method, {"x": [1.0, 2.0], "gamma": 3.0}, PATTERNS, ["x", "gamma"])
    assert (b.args, b.by_position) == (([1.0, 2.0], 3.0), ())  # self is never a parameter to bind
    assert sub.invoke(b) == [3.0, 6.0]


def test_a_class_is_built_by_binding_its_constructor(tmp_path: Path) -> None:
    sub = _conv(tmp_path)
    cls = sub.role("layer")
    b = bind(cls, {"dim": 8, "eps": 1e-3}, {"dim": r"^(dim|d|size)$", "eps": r"eps"}, ["dim"])
    obj = sub.invoke(b)
    assert (obj.dim, obj.eps) == (8, 1e-3)


def test_a_class_built_with_guessed_sizes_that_raises_is_a_failed_probe(tmp_path: Path) -> None:
    """The driver guesses a constructor's sizes: the class raising on them says the guess was wrong, not that
    the answer is; the next candidate that builds and runs is driven."""
    code = """
    class Norm:
        def __init__(self, n):
            raise ValueError("n must be a power of two")

    class NormB:
        def __init__(self, n):
            self.n = n
    """
    sub = _conv(tmp_path, {"sol.py": code})

    def make(cand: Any) -> Any:
        with guess("constructor sizes guessed"):
            return sub.call(cand.load(), 6)

    adapter, result = sub.drive("layer", make, lambda obj: obj.n)
    assert (type(adapter).__name__, result) == ("NormB", 6)
    with pytest.raises(InterfaceError) as info:
        sub.drive("layer", make, lambda obj: obj.missing)
    assert "a failed probe: constructor sizes guessed" in str(info.value)
    assert info.value.not_driven


def test_the_answers_error_keeps_what_else_was_tried_as_context(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    with pytest.raises(SubmissionError) as info:
        _probe_with(sub, ["layer_norm_forward", "forward_fast"])
    assert "(while probing; also tried: a.py:forward_fast:" in str(info.value)
    assert info.value.own_frames and info.value.category == "error"


def test_invoke_records_the_parameters_bound_by_position(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": BROKEN})
    fn = next(c for c in sub.candidates("fwd") if c.name == "forward_fast").load()
    with pytest.raises(SubmissionError) as info:
        sub.invoke(bind(fn, {"x": [1.0], "gamma": 2.0}, PATTERNS, ["x", "gamma"]))
    assert info.value.by_position == ("a", "b") and info.value.own_frames


# --- calls into the answer -------------------------------------------------------------------------------------
def test_calls_turn_the_answers_exceptions_into_verdicts(tmp_path: Path) -> None:
    sub = make_sub(
        tmp_path, {"a.py": "import sys\ndef boom():\n    raise KeyError('k')\ndef leave():\n    sys.exit(2)\n"}
    )
    with pytest.raises(SubmissionError, match=r"boom raised KeyError: 'k'") as info:
        sub.call(sub.load("a.py", "boom"))
    assert 'File "a.py", line 3, in boom' in info.value.detail and info.value.own_frames
    with pytest.raises(SubmissionExit, match=r"sys.exit\(2\)"):
        sub.call(sub.load("a.py", "leave"))
    with pytest.raises(SubmissionError) as info:
        sub.call(sub.load("a.py", "boom"), 1)  # a TypeError from the call itself
    assert not info.value.own_frames
    with pytest.raises(InterfaceError, match="the grader's own"):
        sub.call(lambda: (_ for _ in ()).throw(InterfaceError("the grader's own")))


def test_importing_the_answer_once_and_its_import_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A top-level file gets its plain name, so the answer's own ``from llmc_t_model import COUNT`` (its folder
    is on sys.path in the child) shares the module the driver loaded."""
    monkeypatch.syspath_prepend(str(tmp_path))
    sub = make_sub(
        tmp_path,
        {
            "llmc_t_model.py": "COUNT = [0]\nCOUNT[0] += 1\n",
            "uses.py": "from llmc_t_model import COUNT\n",
            "bad.py": "raise RuntimeError('at import')\n",
            "quits.py": "import sys\nsys.exit(0)\n",
        },
    )
    assert sub.load("llmc_t_model.py", "COUNT") == [1]
    assert sub.load("uses.py", "COUNT") is sub.load("llmc_t_model.py", "COUNT")  # one module, imported once
    with pytest.raises(SubmissionError, match=r"importing bad.py raised RuntimeError: at import"):
        sub.module("bad.py")
    with pytest.raises(SubmissionExit, match=r"importing quits.py called sys.exit\(0\)"):
        sub.module("quits.py")
    with pytest.raises(InterfaceError, match="no such file"):
        sub.module("../outside.py")
    with pytest.raises(InterfaceError, match="has no attribute 'nothing'"):
        sub.load("llmc_t_model.py", "nothing")


def test_phases_are_reported_around_an_import(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": "X = 1\n"})
    phases: list[str] = []
    sub.on_phase = phases.append
    sub.module("a.py")
    sub.module("a.py")
    assert phases == ["import", "call"]


def test_arrays_are_read_from_any_array_like_and_mixed_objects_refused() -> None:
    class FakeCupy:
        def get(self) -> np.ndarray:
            return np.arange(3.0)

    FakeCupy.__module__ = "cupy._core"
    assert Answer.array([[1, 2], [3, 4]], "O").shape == (2, 2)
    assert np.array_equal(Answer.array(FakeCupy(), "O"), np.arange(3.0))
    with pytest.raises(InterfaceError, match="O: expected a numeric array, got list of mixed objects"):
        Answer.array([1, "a", None], "O")


def test_role_and_attempts_of_a_role_with_no_candidate_are_interface_errors(tmp_path: Path) -> None:
    sub = make_sub(tmp_path, {"a.py": "def unrelated(:\n"})
    with pytest.raises(InterfaceError, match=r"no usable forward\(x, gamma\).*files that do not parse: a.py"):
        sub.role("fwd")
    with pytest.raises(InterfaceError):
        sub.attempts("fwd", lambda c: c)


def test_ready_fires_once(tmp_path: Path) -> None:
    calls: list[int] = []
    sub = Answer(tmp_path, ROLES, ready=lambda: calls.append(1))
    sub.ready()
    sub.ready()
    assert calls == [1]


def test_exc_line_is_the_type_and_the_first_line() -> None:
    assert exc_line(ValueError("first\nsecond")) == "ValueError: first"
    assert exc_line(KeyError()) == "KeyError"
    assert len(exc_line(RuntimeError("x" * 1000))) == len("RuntimeError: ") + 300


# --- declared entry points -------------------------------------------------------------------------------------
def test_entry_functions_become_requests_and_strings_are_refused() -> None:
    assert llmc_entry.request(llmc_drive_backwards.gradients, "kv") == ("backwards", "gradients")
    assert llmc_entry.declared("backwards") == {"gradients", "finite_differences"}
    with pytest.raises(ValueError, match="not a declared driver entry point"):
        llmc_entry.request(llmc_drive_backwards.FunctionPair, "backwards")
    with pytest.raises(ValueError, match="pass the function, not the string 'gradients'"):
        llmc_entry.request("gradients", "backwards")
    assert llmc_entry.request(selfcheck.call_entry, "backwards") == ("selfcheck", "call_entry")
    assert llmc_entry.declared("unlisted") is None
    with pytest.raises(ValueError, match=r"llmc_drive_unlisted .*it declares none: mark them @entry"):
        llmc_entry.request("unlisted:session", "backwards")  # a driver without @entry is refused too


def _suite(tmp_path: Path, body: str) -> ModuleType:
    path = tmp_path / "suite_under_check.py"
    path.write_text(textwrap.dedent(body))
    module = ModuleType("suite_under_check")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), vars(module))
    return module


def test_suite_faults_name_strings_unknown_names_and_helpers(tmp_path: Path) -> None:
    module = _suite(
        tmp_path,
        """
        from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards as driver

        def test_a(sandbox):
            sandbox.run(driver.gradients, [])
            sandbox.run("gradients", [])
            sandbox.run(driver.gradiants, [])
            sandbox.run(driver.FunctionPair)
            sandbox.run("selfcheck:call_entry", 1)
        """,
    )
    _assert_faults(
        entrypoints.suite_faults(module, "backwards"),
        [
            "pass the function, not the string",
            "driver.gradiants is not defined",
            "not an @entry function",
            "llmc_drive_selfcheck declares its entry points",
        ],
    )


def _assert_faults(faults: list[str], expected: list[str]) -> None:
    """One fault line per expected fragment, in order."""
    assert len(faults) == len(expected), faults
    for line, fragment in zip(faults, expected, strict=True):
        assert fragment in line, (fragment, line)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("sandbox.run(driver.gradiants, [])", "driver.gradiants is not defined in the suite"),
        ('eff.Arm("fwdbwd", perf.timd, ([8, 4],))', "Arm(perf.timd): perf.timd is not defined"),
    ],
)
def test_a_misnamed_entry_or_arm_fails_collection_as_a_grader_fault(
    pytester: pytest.Pytester, call: str, expected: str
) -> None:
    pytester.makepyfile(
        test_suite=f"""
        from pytest_llmchallenges import efficiency as eff
        from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards as driver
        from pytest_llmchallenges.challenges.backwards.driver import llmc_perf_backwards as perf
        CHALLENGE = "backwards"

        def test_x(sandbox):
            {call}
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*grader fault: test_suite.py:*{expected}*"])


def test_suite_faults_check_the_function_of_every_efficiency_arm(tmp_path: Path) -> None:
    """``Arm(name, function)`` (any import of it) and the attention helper name entry points of the challenge's
    ``llmc_perf_<c>`` like ``sandbox.run`` does those of its driver."""
    module = _suite(
        tmp_path,
        """
        from pytest_llmchallenges import efficiency as eff
        from pytest_llmchallenges.efficiency import Arm
        from pytest_llmchallenges.challenges.backwards.driver import llmc_perf_backwards as perf

        def test_efficiency(sandbox, request):
            eff.Arm("a", perf.timed, ())
            Arm("b", function=perf.baseline)
            eff.Arm("c", perf.tmied, ())
            eff.Arm("d", perf.inputs, ())
            eff.Arm("e", "llmc_perf_backwards:timed", ())
            eff.attention_versus_naive(sandbox, request.node, perf.timed, perf.layer_norm_fwd_bwd, (), None, 1, "")
            eff.Arm("f")
        """,
    )
    _assert_faults(
        entrypoints.suite_faults(module, "backwards"),
        [
            "Arm(perf.tmied): perf.tmied is not defined in the suite",
            "Arm(perf.inputs): not an @entry function",
            "Arm('llmc_perf_backwards:timed'): llmc_perf_backwards declares",
            "attention_versus_naive(perf.layer_norm_fwd_bwd): not an @entry",
            "Arm() names no driver function",
        ],
    )


def test_efficiency_drivers_declare_what_their_suites_time() -> None:
    for challenge in ("backwards", "flash_attention", "flash_attention_bwd"):
        assert llmc_entry.declared(f"llmc_perf_{challenge}") == {"timed", "baseline"}, challenge
    assert llmc_entry.declared("llmc_perf_beam_search") == {"timed"}
    from pytest_llmchallenges.challenges.backwards.driver import llmc_perf_backwards

    assert llmc_entry.request(llmc_perf_backwards.timed, "kv") == ("llmc_perf_backwards", "timed")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_declared_entry_point_is_named_by_the_challenges_suites(name: str) -> None:
    """A declared entry point no suite names is dead code the child would still serve: remove it."""
    spec = CHALLENGES[name]
    assert spec.suite is not None
    named: set[str] = set()
    for path in spec.suite.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                named.add(node.id)
            elif isinstance(node, ast.Attribute):
                named.add(node.attr)
            elif isinstance(node, ast.alias):
                named.add(node.asname or node.name)
    for driver in (name, llmc_entry.PERF_PREFIX + name):
        unused = sorted((llmc_entry.declared(driver) or frozenset()) - named)
        assert not unused, f"{driver}: @entry functions no suite names: {unused}"


# --- the rule through a driver ---------------------------------------------------------------------------------
def _layernorm_case() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 3, 4)), "gamma": np.ones(4), "beta": np.zeros(4), "eps": 1e-5, "dy": None}


def _drive_backwards(tmp_path: Path, code: str) -> Any:
    (tmp_path / "ln.py").write_text(textwrap.dedent(code))
    sub = Answer(tmp_path, llmc_drive_backwards.ROLES)
    case = _layernorm_case()
    case["dy"] = np.ones_like(case["x"])
    return llmc_drive_backwards.gradients(sub, [case])


def test_backwards_driver_charges_the_declared_functions_error(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="ZeroDivisionError") as info:
        _drive_backwards(
            tmp_path,
            """
            def layer_norm_forward(x, gamma, beta, eps):
                return 1 / 0

            def layer_norm_backward(dy, cache):
                return dy, dy, dy
            """,
        )
    assert 'File "ln.py"' in info.value.detail


def test_backwards_driver_does_not_charge_a_guessed_convention(tmp_path: Path) -> None:
    with pytest.raises(InterfaceError) as info:
        _drive_backwards(
            tmp_path,
            """
            def layernorm_fwd_v2(p, q, r, s):
                return 1 / 0

            def layernorm_bwd_v2(p, q):
                return p, p, p
            """,
        )
    assert info.value.not_driven
    assert "a failed probe: parameters p, q, r, s bound by position" in str(info.value)


def test_an_answer_only_guesses_reach_is_graded_not_driven(pytester: pytest.Pytester) -> None:
    """End to end: the child's probe rule outcome becomes the report's "not_driven" category, not `error`."""
    (pytester.path / "m" / "backwards").mkdir(parents=True)
    (pytester.path / "m" / "backwards" / "ln.py").write_text(
        "def layernorm_fwd_v2(p, q, r, s):\n    return 1 / 0\n\ndef layernorm_bwd_v2(p, q):\n    return p, p, p\n"
    )
    pytester.makepyfile(
        test_suite="""
        import numpy as np
        from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards as driver
        CHALLENGE = "backwards"

        def test_x(sandbox):
            x = np.ones((2, 3, 4))
            sandbox.run(driver.gradients, [{"x": x, "gamma": np.ones(4), "beta": np.zeros(4), "eps": 1e-5, "dy": x}])
        """
    )
    args = ["--llm-submission", "m", "test_suite.py", "-p", "no:cacheprovider", "--llm-report", "r.json"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    test = load(pytester.path / "r.json")["submissions"][0]["challenges"][0]["tests"][0]
    assert test["category"] == "not_driven", test
    assert "a failed probe" in test["message"] and "llmchallenge.toml" in test["message"]
