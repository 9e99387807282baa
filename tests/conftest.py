"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]


def write_submission(root: Path, files: dict[str, str]) -> Path:
    """Create files under ``root`` (paths like "m1/backwards/sol.py"); returns root."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SELFCHECK_SUITE = """
from pytest_llmchallenges.child.llmc_drive_selfcheck import call_entry
CHALLENGE = "backwards"

def test_entry(sandbox):
    r = sandbox.run(call_entry, 21)
    assert r.value == 42, f"expected 42, got {r.value!r}"
"""
