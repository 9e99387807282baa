"""A driver for the sandbox's own checks and its overhead benchmark: call the submission's ``entry``."""

from __future__ import annotations

from typing import Any

from llmc_api import Answer, Role

ROLES = {"entry": Role(prescribed=["entry"], kind="any", description="entry()")}


def call_entry(sub: Answer, *args: Any) -> Any:
    return sub.call(sub.role("entry"), *args)


def measured_entry(sub: Answer, *args: Any) -> Any:
    fn = sub.role("entry")
    sub.ready()
    return sub.call(fn, *args)


def call_direct(sub: Answer, *args: Any) -> Any:
    """The entry called by the driver itself, not through ``sub.call``: its exceptions reach the boot's handler."""
    return sub.role("entry")(*args)
