"""The same challenge through the pytest hook, for a conftest's ``pytest_plugins`` (no installed metadata)."""

from __future__ import annotations

from pytest_llmchallenges.registry import Registry

from . import challenge


def pytest_llmchallenges_register(registry: Registry) -> None:
    registry.add(challenge())
