"""Driver of the softmax challenge (child side): find the submission's softmax and call it. Adaptation only.

It runs inside the sandbox, where this folder alone of the package is readable: it imports the child-side
toolkit (``llmc_api``, ``llmc_entry``) as top-level modules there, and through the grader's package in the
grading process (where a suite imports its entry points by name).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer, Role
    from pytest_llmchallenges.child.llmc_entry import entry
except ImportError:  # inside the child, where the grader's package cannot be imported
    from llmc_api import Answer, Role  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]

ROLES = {
    "softmax": Role(prescribed=["softmax"], patterns=[r"softmax"], kind="function", description="softmax(x, axis)")
}


@entry
def softmax_of(sub: Answer, x: Any, axis: int = -1) -> Any:
    """The submission's softmax of ``x`` along ``axis``, as a float64 array."""
    fn = sub.role("softmax")
    return np.asarray(sub.call(fn, np.asarray(x), axis=axis), dtype=np.float64)
