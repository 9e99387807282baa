"""The AST scan and manifest (sandboxed/llmc_scan.py), in process: what a folder offers, read without
importing anything (nothing written here runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmchallenges.child import llmc_scan
from pytest_llmchallenges.child.llmc_scan import Definition

SOURCE = """
import os, numpy.linalg as la
from torch import nn
from . import sibling
from .pkg import thing
raise SystemExit("never run")


def forward(x, gamma, beta, eps=1e-5, *rest, scale, **kw):
    pass


async def fetch(url, /, retries=3):
    pass


class Norm:
    def __init__(self, dim, eps=1e-5):
        pass

    def forward(self, x):
        pass

    @staticmethod
    def helper(a, b):
        pass

    @classmethod
    def build(cls, cfg):
        pass

    def __call__(self, x):
        pass

    class Inner:
        def deep(self):
            pass


class Plain:
    pass
"""


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return root


def test_definitions_with_their_positional_parameters(tmp_path: Path) -> None:
    scan = llmc_scan.scan_folder(_write(tmp_path, {"sol.py": SOURCE}))
    got = {d.name: d for d in scan.definitions}
    assert got["forward"] == Definition("sol.py", "forward", "function", ("x", "gamma", "beta", "eps"), 3, True, 9)
    assert got["fetch"] == Definition("sol.py", "fetch", "function", ("url", "retries"), 1, False, 13)
    assert got["Norm"].kind == "class" and got["Norm"].params == ("dim", "eps") and got["Norm"].required == 1
    assert got["Norm.forward"].params == ("x",) and got["Norm.forward"].kind == "method"
    assert got["Norm.helper"].params == ("a", "b")  # a staticmethod keeps its first parameter
    assert got["Norm.build"].params == ("cfg",)  # cls dropped like self
    assert got["Plain"].params == () and got["Plain"].required == 0
    assert "Norm.__call__" not in got and "Norm.__init__" not in got  # dunders are not candidates
    assert not any("Inner" in name or "deep" in name for name in got)  # one level of classes only
    assert got["forward"].signature() == "forward(x, gamma, beta, eps, *args)"


def test_imports_are_top_level_names_of_absolute_imports(tmp_path: Path) -> None:
    scan = llmc_scan.scan_folder(_write(tmp_path, {"sol.py": SOURCE}))
    assert scan.imports == {"sol.py": {"os", "numpy", "torch"}}  # relative imports name no module


def test_a_file_that_does_not_parse_is_named_and_the_rest_still_scanned(tmp_path: Path) -> None:
    root = _write(tmp_path, {"bad.py": "def f(:\n", "nul.py": b"x = 1\x00\n", "good.py": "def g(a):\n    pass\n"})
    scan = llmc_scan.scan_folder(root)
    assert scan.parse_errors["bad.py"].startswith("line 1: ")
    assert "nul.py" in scan.parse_errors
    assert [d.name for d in scan.definitions] == ["g"]
    assert scan.files == ["bad.py", "good.py", "nul.py"]


def test_which_files_are_read(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "a.py": "",
            "pkg/b.py": "",
            "pkg/sub/c.py": "",
            "pkg/sub/deeper/d.py": "",  # deeper than three levels
            "__pycache__/e.py": "",
            ".hidden/f.py": "",
            "venv/g.py": "",
            "notes.txt": "def not_python(): pass",
        },
    )
    assert [p.relative_to(root).as_posix() for p in llmc_scan.python_files(root)] == [
        "a.py",
        "pkg/b.py",
        "pkg/sub/c.py",
    ]


def test_manifest_roles(tmp_path: Path) -> None:
    assert llmc_scan.read_manifest(tmp_path) == {}
    (tmp_path / llmc_scan.MANIFEST).write_text('[roles]\nforward = "model.py:Net.forward"\n')
    assert llmc_scan.read_manifest(tmp_path) == {"forward": "model.py:Net.forward"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[roles\n", "does not parse"),
        ('roles = "x"\n', "must map role names"),
        ("[roles]\nforward = 3\n", "must map role names"),
        ('[roles]\nforward = "no_colon"\n', "must map role names"),
    ],
)
def test_a_malformed_manifest_is_one_value_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / llmc_scan.MANIFEST).write_text(text)
    with pytest.raises(ValueError, match=message):
        llmc_scan.read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("file", "stale"),
    [
        ("solution.py", False),
        ("flash_attention.py", False),
        ("solution_old.py", True),
        ("attn.bak.py", True),
        ("model_v2.py", True),
        ("copy.py", True),
        ("test_attention.py", True),
        ("attention_test.py", True),
        ("oldest.py", False),  # a word that merely starts like one
        ("draftsman.py", False),
    ],
)
def test_stale_looking_file_names(file: str, stale: bool) -> None:
    assert llmc_scan.looks_stale(file) is stale
