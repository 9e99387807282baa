"""The layout: one folder per challenge holds every piece that ships, and the core knows no challenge by name.

A newcomer must find all of a challenge by listing one folder; the child must be able to read that folder's
``driver/`` and nothing else of it; a ninth challenge must need no edit of the core. These checks read the
source only (nothing is graded).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pytest_llmchallenges import registry
from pytest_llmchallenges.challenges import BUILTIN, CHALLENGES, HERE

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pytest_llmchallenges"
BUILTINS = sorted(BUILTIN)


@pytest.mark.parametrize("name", BUILTINS)
def test_a_challenge_folder_holds_every_piece(name: str) -> None:
    folder = HERE / name
    pieces = [
        "challenge.toml",
        "prompt.md",
        "oracle.py",
        "__init__.py",
        f"suite/test_{name}.py",
        f"suite/test_efficiency_{name}.py",
        "suite/__init__.py",
        f"driver/llmc_drive_{name}.py",
        "driver/__init__.py",
    ]
    missing = [p for p in pieces if not (folder / p).is_file()]
    assert not missing, f"{name}: missing {missing}"
    spec = CHALLENGES[name]
    assert (spec.package_dir, spec.suite, spec.driver_dir) == (folder, folder / "suite", folder / "driver")
    assert registry.problems(spec) == [], "a built-in row passes the checks a third-party row must pass"
    assert (REPO / "reference" / name).is_dir() and (REPO / "tests" / "mutants" / f"{name}.toml").is_file()


@pytest.mark.parametrize("name", BUILTINS)
def test_the_driver_folder_holds_only_child_side_code(name: str) -> None:
    """Everything in driver/ is readable by a call: no suite, oracle or prompt there, and no import of the
    grader's package beyond the toolkit and driver folders (which fall back to plain names in the child)."""
    driver = HERE / name / "driver"
    assert sorted(p.suffix for p in driver.iterdir() if p.is_file()) == [".py"] * sum(
        1 for p in driver.iterdir() if p.is_file()
    )
    for path in driver.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            for full in names:
                if full.startswith("pytest_llmchallenges"):
                    allowed = full.startswith("pytest_llmchallenges.child") or (
                        full.startswith("pytest_llmchallenges.challenges.") and ".driver" in full
                    )
                    assert allowed, f"{path.name} imports {full}: the child cannot read it"


def _core_modules() -> list[Path]:
    """The core: every package module outside the challenge folders, the child-side toolkit included."""
    return sorted(p for p in PACKAGE.rglob("*.py") if HERE not in p.parents and p.parent.name != "__pycache__")


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_names_no_challenge(path: Path) -> None:
    """A challenge's name in the core's code (a string constant, or part of a path or module name in one) means
    the core special-cases it; that belongs in the challenge's row instead."""
    found = []
    tree = ast.parse(path.read_text())
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings: examples are fine
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            text = node.value
            for name in BUILTINS:
                if text == name or f"llmc_drive_{name}" in text or f"/{name}/" in text or f"_{name}." in text:
                    found.append(f"line {node.lineno}: {text[:60]!r}")
    assert not found, f"{path.name} names a challenge: {found}"


def test_the_table_is_read_from_the_folders() -> None:
    """Every folder with a row is a challenge, in the order its row gives (the original script's order)."""
    folders = sorted(d.name for d in HERE.iterdir() if (d / "challenge.toml").is_file())
    assert folders == BUILTINS
    orders = [CHALLENGES[n].order for n in CHALLENGES if n in BUILTIN]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_a_call_binds_its_own_driver_folders_and_those_it_builds_on() -> None:
    """flash_attention_bwd's driver imports flash_attention's adapter (``uses_drivers``): a call binds both
    driver folders, in that order, and nothing else of either challenge folder."""
    bwd, fwd = CHALLENGES["flash_attention_bwd"], CHALLENGES["flash_attention"]
    plan: dict = {"mountpoint": "/x", "hidden": []}
    request: dict = {}
    registry.open_driver("flash_attention_bwd", request, plan)
    assert plan["challenge_drivers"] == [str(bwd.driver_dir), str(fwd.driver_dir)]
    assert request["driver_paths"] == ["/llmc/drivers/0", "/llmc/drivers/1"]
    request = {"readable": ["/usr"]}
    registry.open_driver("backwards", request, None)  # no namespaces: the Landlock read list names the folder
    assert request == {
        "readable": ["/usr", str(CHALLENGES["backwards"].driver_dir)],
        "driver_paths": [str(CHALLENGES["backwards"].driver_dir)],
    }
