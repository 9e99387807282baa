"""A driver for the sandbox's own checks and its overhead benchmark: call the submission's ``entry``.

Tests and benchmarks import these ``@entry`` functions and pass them to ``Sandbox.run``, as suites do."""

from __future__ import annotations

from typing import Any

try:
    from .llmc_api import Answer, Role
    from .llmc_entry import entry
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer, Role  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]

ROLES = {"entry": Role(prescribed=["entry"], kind="any", description="entry()")}


@entry
def call_entry(sub: Answer, *args: Any) -> Any:
    return sub.call(sub.role("entry"), *args)


@entry
def measured_entry(sub: Answer, *args: Any) -> Any:
    fn = sub.role("entry")
    sub.ready()
    return sub.call(fn, *args)


@entry
def call_direct(sub: Answer, *args: Any) -> Any:
    """The entry called by the driver itself, not through ``sub.call``: its exceptions reach the boot's handler."""
    return sub.role("entry")(*args)
