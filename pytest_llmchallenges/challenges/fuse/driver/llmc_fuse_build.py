"""nvcc and compute-sanitizer, run in the child: compiling the answer's files as delivered, building the shim
(llmc_fuse_shim) around its launcher into a library or a standalone program, and running the sanitizer.

Compiling happens in the child because nvcc runs the answer's preprocessor; the grader keeps the built
library as bytes and hands it to each later call (llmc_fuse_run). A launcher that fits its role and does
not build is the answer's ``compile`` failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

try:
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_launcher import PROBE_KS, Launcher
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_shim import shim_source
    from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_source import markdown_code, source_files
    from pytest_llmchallenges.child.llmc_errors import SubmissionError
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    from llmc_errors import SubmissionError  # type: ignore[no-redef]
    from llmc_fuse_launcher import PROBE_KS, Launcher  # type: ignore[no-redef]
    from llmc_fuse_shim import shim_source  # type: ignore[no-redef]
    from llmc_fuse_source import markdown_code, source_files  # type: ignore[no-redef]

NVCC_FLAGS = ["-std=c++17", "-O3"]
SANITIZER_TIMEOUT = 240


def scratch_dir() -> Path:
    """The call's own temp folder (the sandbox sets TMPDIR per call)."""
    return Path(os.environ.get("TMPDIR", "/tmp"))


def nvcc_path() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and Path(home, "bin", "nvcc").is_file():
            return str(Path(home, "bin", "nvcc"))
    return None


def device_arch() -> str:
    """sm_XY of CUDA device 0 (needs CuPy and a device)."""
    import cupy

    return f"sm_{cupy.cuda.Device(0).compute_capability}"


def first_errors(log: str, limit: int = 12) -> str:
    """The compiler's first error lines (with their file:line), else the head of the log."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.search(r"\berror\b|fatal", ln, re.I)]
    return "\n".join((errs or lines)[:limit])


def run_nvcc(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """(exit status, compiler output); a compile failure when nvcc is not installed at all."""
    nvcc = nvcc_path()
    if nvcc is None:
        raise SubmissionError("nvcc (the CUDA compiler) is not installed here", category="compile")
    try:
        proc = subprocess.run(
            [nvcc, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, f"nvcc did not finish within {timeout:g} s"
    return proc.returncode, (proc.stdout + proc.stderr)


def compile_units(root: Path, arch: str) -> dict:
    """Compile every .cu file of ``root`` unmodified (``nvcc -c``); the first errors of each, and for a file
    that is really Markdown, whether its extracted code compiles (for the message only)."""
    files = source_files(root)
    units = [f for f in files if f.path.endswith(".cu")]
    out: dict[str, Any] = {"arch": arch, "units": [], "headers": [f.path for f in files if not f.path.endswith(".cu")]}
    md_elsewhere = [p.relative_to(root).as_posix() for p in root.rglob("*.md") if re.search(
        r"^\s*```\s*(cuda|cu|cpp|c\+\+)\b", p.read_text(errors="replace"), re.M)]  # fmt: skip
    out["markdown_with_cuda"] = md_elsewhere
    scratch = scratch_dir()
    for n, f in enumerate(units):
        rc, log = run_nvcc([*NVCC_FLAGS, f"-arch={arch}", "-c", f.path, "-o", str(scratch / f"unit{n}.o")], root)
        entry: dict[str, Any] = {"file": f.path, "ok": rc == 0, "errors": "" if rc == 0 else first_errors(log)}
        entry["warnings"] = len(re.findall(r"\bwarning\b", log))
        entry["markdown"] = f.markdown
        if f.markdown and rc != 0:
            probe = scratch / f"extracted{n}.cu"
            probe.write_text(markdown_code(f.text))
            rc2, log2 = run_nvcc([*NVCC_FLAGS, f"-arch={arch}", "-c", str(probe), "-o", str(scratch / f"x{n}.o")], root)
            entry["extracted_ok"] = rc2 == 0
            entry["extracted_errors"] = "" if rc2 == 0 else first_errors(log2, 6)
        out["units"].append(entry)
    return out


def build_shim(
    root: Path, launcher: Launcher, arch: str, output: Path, main: dict | None = None
) -> tuple[bool, list | None, str]:
    """Compile the shim: with the allocation counters first, without them if only those break the build; for
    a template with no explicit instantiation, retry with K <= 64 (its own static_asserts may refuse more).
    Returns (allocations tracked, K values compiled, compiler log)."""
    include = (root / launcher.function.file).resolve()
    kind = ["-o", str(output)] + ([] if main else ["-shared", "-Xcompiler", "-fPIC", "-Xlinker", "-z,defs"])
    extra = ["-lineinfo"] if main else []
    attempts = [(True, launcher.ks), (False, launcher.ks)]
    if launcher.k_template is not None and launcher.ks == list(PROBE_KS):
        small = [k for k in PROBE_KS if k <= 64]
        attempts += [(True, small), (False, small)]
    log = ""
    for track, ks in attempts:
        shim = output.with_name(output.name + ".shim.cu")
        shim.write_text(shim_source(launcher, include, track, ks, main))
        rc, log = run_nvcc([*NVCC_FLAGS, *extra, f"-arch={arch}", f"-I{root}", str(shim), *kind], root)
        if rc == 0:
            return track, ks, log
    raise SubmissionError(
        f"{launcher.function.file} does not build behind the grader's shim (launcher {launcher.function.signature()})",
        first_errors(log),
        category="compile",
    )


def sanitizer_path() -> str | None:
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    nvcc = nvcc_path()
    for cand in ([Path(nvcc).parent / "compute-sanitizer"] if nvcc else []) + [
        Path("/usr/local/cuda/bin/compute-sanitizer"),
        Path("/usr/local/cuda/compute-sanitizer/compute-sanitizer"),
    ]:
        if cand.is_file():
            return str(cand)
    return None


def run_sanitizer(tool: str, exe: Path, tools: list[str]) -> dict[str, Any]:
    """{tool name: {"rc", "tail"}} for each compute-sanitizer tool run on the standalone program ``exe``."""
    report: dict[str, Any] = {}
    for name in tools:
        cmd = [tool, "--tool", name, "--error-exitcode", "97", "--print-limit", "20", str(exe)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=SANITIZER_TIMEOUT, stdin=subprocess.DEVNULL
            )
            text = proc.stdout + proc.stderr
            report[name] = {"rc": proc.returncode, "tail": text[-3000:]}
        except subprocess.TimeoutExpired:
            report[name] = {"rc": 124, "tail": f"{name} did not finish within {SANITIZER_TIMEOUT} s"}
    return report
