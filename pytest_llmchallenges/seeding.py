"""The seed of every test's inputs: fixed by default (two runs of the same folders give identical JSON),
changed by ``--llm-seed N`` (ini ``llm_seed``; ``random`` draws one) so that inputs cannot be known in advance
from the public package.
"""

from __future__ import annotations

import os
import secrets
import zlib

import pytest

_DRAWN = "_LLMC_DRAWN_SEED"  # a drawn seed travels to pytest-xdist workers through their environment


def parse(text: str) -> int:
    """``--llm-seed`` value: a non-negative integer, or ``random`` (drawn once per run, shared by workers)."""
    text = str(text).strip()
    if text.lower() == "random":
        if _DRAWN not in os.environ:
            os.environ[_DRAWN] = str(secrets.randbelow(2**31 - 1) + 1)
        return int(os.environ[_DRAWN])
    try:
        value = int(text or 0)
    except ValueError:
        raise pytest.UsageError(f"--llm-seed: {text!r} is neither a non-negative integer nor 'random'") from None
    if value < 0:
        raise pytest.UsageError(f"--llm-seed: {value} is negative")
    return value


def run_seed(config: pytest.Config) -> int:
    """The run's seed: the option, else the ini key, else 0 (the fixed default)."""
    value = config.getoption("llm_seed", None)
    return parse(value if value is not None else config.getini("llm_seed") or "0")


def describe(config: pytest.Config) -> str:
    """One line for the header and the reports' run section."""
    seed = run_seed(config)
    return f"seed: {seed}" + (" (the fixed default)" if seed == 0 else " (inputs differ from the default run)")


def stable(text: str, seed: int = 0) -> int:
    """A seed for one test: its name alone under the default seed 0 (unchanged since the first release)."""
    return zlib.crc32(text.encode() if seed == 0 else f"{seed}\0{text}".encode())
