"""Fixtures every challenge suite uses: the submission under test, its sandbox, seeded inputs, notes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from . import isolation, registry, seeding
from .calls import DEFAULT_MEMORY_LIMIT, Sandbox
from .challenges import CHALLENGES
from .child import llmc_scan
from .limits import CalibratedSandbox
from .submissions import Submission

NOTE_KEY = "llm_note"


def challenge_of(request: pytest.FixtureRequest) -> str:
    name = getattr(request.module, "CHALLENGE", None)
    if name not in CHALLENGES:
        raise pytest.UsageError(f"{request.module.__name__} has no valid CHALLENGE name")
    return str(name)


def pytest_configure(config: pytest.Config) -> None:
    seeding.run_seed(config)  # 'random' is drawn here, in the controller, before pytest-xdist starts workers
    mode = isolation.mode(config)
    if mode == "strict" and not isolation.probe().full:
        raise pytest.UsageError(f"--llm-isolation=strict refuses to grade: {isolation.describe()}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [isolation.describe(isolation.mode(config)), seeding.describe(config)]


def _stable_seed(text: str, config: pytest.Config | None = None) -> int:
    return seeding.stable(text, seeding.run_seed(config) if config is not None else 0)


@pytest.fixture
def submission(request: pytest.FixtureRequest) -> Submission:
    """The submission under test (parametrized by the plugin); skips as ``missing`` when it did not answer this
    challenge (no folder, or only the scaffold's files): a missing answer is never graded and failed."""
    sub = getattr(request, "param", None)
    if sub is None:
        pytest.skip("no submissions given: use --llm-submission PATH or --llm-reference")
    reason = sub.missing_reason(challenge_of(request))
    if reason is not None:
        pytest.skip(reason)
    return sub


@pytest.fixture
def challenge_dir(submission: Submission, request: pytest.FixtureRequest) -> Path:
    path = submission.challenge_dir(challenge_of(request))
    assert path is not None
    return path


def number_option(config: pytest.Config, name: str) -> float | None:
    """A positive number from the option or its ini key (both checked at start-up by the plugin), or None."""
    value = config.getoption(name, None)
    if value is None:
        value = config.getini(name)
    return float(value) if value not in (None, "") else None


@pytest.fixture
def sandbox(challenge_dir: Path, request: pytest.FixtureRequest) -> Sandbox:
    """Calls into the submission's challenge folder, each in a fresh confined child process."""
    challenge = challenge_of(request)
    config = request.config
    user_timeout = number_option(config, "llm_timeout")
    user_memory = number_option(config, "llm_memory")
    settings: dict = dict(
        memory_limit=int(float(user_memory) * 2**20) if user_memory else DEFAULT_MEMORY_LIMIT,
        seed=_stable_seed(request.node.originalname, config),
        override_timeout=float(user_timeout) if user_timeout else None,
        confine=not CHALLENGES[challenge].cuda_runtime,
        isolation=isolation.mode(config),
        note=lambda text: request.node.user_properties.append((NOTE_KEY, text)),
    )
    if request.node.get_closest_marker("perf") is not None:  # limits of its own, derived from its baselines
        settings["override_timeout"] = None
        return Sandbox(challenge, challenge_dir, CHALLENGES[challenge].timeout, **settings)
    if user_timeout:
        return Sandbox(challenge, challenge_dir, CHALLENGES[challenge].timeout, **settings)
    return CalibratedSandbox(  # limits derived from the reference's time for the same call
        challenge, challenge_dir, CHALLENGES[challenge].timeout, test=request.node.originalname,
        reference_dir=registry.reference_dir(challenge), **settings,
    )  # fmt: skip


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """Inputs seeded by the test's name and the run's --llm-seed: every submission sees the same inputs."""
    name = f"{request.module.__name__}::{request.node.originalname}"
    return np.random.default_rng(_stable_seed(name, request.config))


@pytest.fixture
def scan(challenge_dir: Path) -> llmc_scan.Scan:
    """What the submission's files define and import, read by AST without importing anything."""
    return llmc_scan.scan_folder(challenge_dir)


@pytest.fixture
def llm_note(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Attach a note to this test's entry in the grade report (e.g. "reported, not re-run: ...")."""

    def note(text: str) -> None:
        request.node.user_properties.append((NOTE_KEY, text))

    return note


@pytest.fixture(scope="session")
def minimal_lm() -> object:
    """The prompts' random 1-layer model (vocab 1000, d_model 64), as the grader's oracle."""
    from .child.llmc_models import MinimalLM

    return MinimalLM()
