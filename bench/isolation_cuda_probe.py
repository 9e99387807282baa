"""Does the CUDA runtime work inside the sandbox's namespaces? (run on a GPU machine, next to
bench/landlock_cuda_probe.py, which looks at Landlock alone)

The fuse challenge's calls run in the same user, mount, pid, network, IPC and UTS namespaces as every call,
with the GPU device nodes and /sys bound into their fresh root, but without Landlock. This script makes one
sandboxed call per variant that initialises CUDA through CuPy and runs a kernel, and prints one line per
variant: ok, or the error and the child's output tail. Prints one line and exits 0 where there is no CUDA
device.

    python bench/isolation_cuda_probe.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KERNEL = """
import cupy as cp

def entry(n):
    x = cp.arange(n, dtype=cp.float32)
    add = cp.ElementwiseKernel("float32 a", "float32 b", "b = a + 1", "add_one")
    return float(add(x).sum().get())
"""

# name: (isolation mode, LLMC_CUDA_NAMESPACES)
VARIANTS = {
    "old path (no namespaces, no Landlock)": ("off", "1"),
    "namespaces + device nodes + /sys (the fuse calls' default)": ("auto", "1"),
    "namespaces switched off for CUDA calls (LLMC_CUDA_NAMESPACES=0)": ("auto", "0"),
}


def main() -> None:
    from pytest_llmchallenges import capabilities, isolation
    from pytest_llmchallenges.calls import Sandbox
    from pytest_llmchallenges.child.llmc_drive_selfcheck import call_entry
    from pytest_llmchallenges.grading import GradingFailure

    reason = capabilities.missing("gpu")
    if reason:
        print(f"isolation CUDA probe skipped: {reason}")
        return
    print(isolation.describe())
    with tempfile.TemporaryDirectory(prefix="isolation-probe-") as tmp:
        folder = Path(tmp) / "fuse"
        folder.mkdir()
        (folder / "sol.py").write_text(KERNEL)
        for name, (mode, namespaces) in VARIANTS.items():
            os.environ["LLMC_CUDA_NAMESPACES"] = namespaces
            box = Sandbox("fuse", folder, 120, confine=False, isolation=mode)  # confine=False: as the fuse calls
            try:
                result = box.run(call_entry, 1000)
                status = "ok" if result.value == 500500.0 else f"wrong value {result.value!r}"
                print(f"{name:66s} {status} ({result.confinement})")
            except GradingFailure as exc:
                tail = exc.detail.strip().splitlines()[-3:]
                print(f"{name:66s} FAILED: {exc.reason} | {' | '.join(tail)}")


if __name__ == "__main__":
    main()
