"""Child side of the fuse suite: build a CUDA submission behind a generated C shim and run it through CuPy.

Real answers share no API. The shim ``#include``s the submission's source file as delivered and exports one C
function, ``llmc_fuse_launch(logits, idx, probs, B, T, V, K, stream)``, that calls whatever host launcher the
source defines: with K as a template argument when the launcher is templated on it (one ``case`` per supported
K), else at run time. The launcher, the roles of its parameters and the supported K are read from the source
with comments and strings stripped (no preprocessing); ``llmchallenge.toml`` overrides them::

    [roles]
    launcher = "kernel.cu:launch_fused_softmax_topk"
    [fuse]
    args = "logits, idx, probs, B, T, V, K, stream"   # roles of the launcher's parameters, in order
    ks = [1, 8, 64]                                    # the values of K it supports

Roles: logits, idx, probs, B, T, rows (= B*T), V, K, stream, temperature (passed 1.0), default (omitted).

This module holds only the entry points; the work is done by one module per job in this folder:
llmc_fuse_source (reading C sources), llmc_fuse_roles (parameter roles), llmc_fuse_launcher (choosing the
launcher), llmc_fuse_shim (the shim's text), llmc_fuse_build (nvcc, compute-sanitizer), llmc_fuse_run
(ctypes and CuPy launches).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    from pytest_llmchallenges.challenges.fuse.driver import llmc_fuse_build
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_launcher import launcher_or_compile_error
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_run import launch_one, load_library
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    import llmc_fuse_build  # type: ignore[no-redef]
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_fuse_launcher import launcher_or_compile_error  # type: ignore[no-redef]
    from llmc_fuse_run import launch_one, load_library  # type: ignore[no-redef]

ROLES: dict = {}  # the submission is C++: its launcher is found by llmc_fuse_launcher, not by the AST scan


@entry
def compile_check(sub: Answer, arch: str = "sm_90") -> dict:
    """Compile every .cu file of the folder unmodified (``nvcc -c``); report the first errors of each."""
    if llmc_fuse_build.nvcc_path() is None:
        return {"missing": "nvcc (the CUDA compiler) is not installed: NVRTC cannot compile host launchers"}
    return llmc_fuse_build.compile_units(Path(sub.root), arch)


@entry
def build(sub: Answer, arch: str | None = None) -> dict:
    """Build the shared library; returns its bytes (the grader keeps them) and what was read from the source."""
    root = Path(sub.root)
    launcher = launcher_or_compile_error(root)
    arch = arch or llmc_fuse_build.device_arch()
    out = llmc_fuse_build.scratch_dir() / "libllmc_fuse.so"
    tracked, ks, log = llmc_fuse_build.build_shim(root, launcher, arch, out)
    return {
        "so": np.frombuffer(out.read_bytes(), dtype=np.uint8),
        "launcher": launcher.describe() | {"ks": ks},
        "alloc_tracked": tracked,
        "arch": arch,
        "warnings": llmc_fuse_build.first_errors(log, 6) if "warning" in log else "",
    }


@entry
def run_kernel_cases(sub: Answer, built: dict, cases: list[dict], stop_at_first_success: bool = False) -> list[dict]:
    """Launch the built library on each case {"logits": float32 [B, T, V], "K": int}; stops after a fault."""
    import cupy  # noqa: F401  (fails here, as an interface error, where CuPy is missing)

    lib = load_library(built)
    desc = built["launcher"]
    results = []
    for case in cases:
        logits = np.ascontiguousarray(case["logits"], dtype=np.float32)
        res = launch_one(lib, logits, int(case["K"]), desc["idx_dtype"], desc["prob_dtype"])
        results.append(res)
        if res.get("fault") or (stop_at_first_success and res["status"] == 0):
            break
    return results


@entry
def sanitize(sub: Answer, shape: list[int], k: int, tools: list[str], arch: str | None = None) -> dict:
    """Build a standalone program around the launcher and run it under compute-sanitizer's tools."""
    tool = llmc_fuse_build.sanitizer_path()
    if tool is None:
        return {"missing": "compute-sanitizer is not installed"}
    root = Path(sub.root)
    launcher = launcher_or_compile_error(root)
    arch = arch or llmc_fuse_build.device_arch()
    b, t, v = shape
    exe = llmc_fuse_build.scratch_dir() / "llmc_fuse_check"
    llmc_fuse_build.build_shim(root, launcher, arch, exe, main={"B": b, "T": t, "V": v, "K": k})
    return llmc_fuse_build.run_sanitizer(tool, exe, tools)
