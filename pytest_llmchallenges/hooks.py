"""Hook specifications for packages that add challenges (added to pytest by the plugin's ``pytest_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .registry import Registry


@pytest.hookspec
def pytest_llmchallenges_register(registry: Registry) -> None:
    """Add challenges to this run: call ``registry.add(challenge)`` once per challenge (a
    :class:`pytest_llmchallenges.challenges.Challenge`, usually made by ``registry.packaged``). Called at
    configure time, before markers are declared, so a challenge added here is a marker and ``-m`` name too."""
