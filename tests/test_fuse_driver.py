"""The fuse driver's C reading, role matching and shim, without nvcc or a GPU: what it reads from a source
decides how every GPU test calls the answer, and CI can only check it here. Fast: nothing is compiled.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmchallenges.challenges.fuse.driver import llmc_drive_fuse, llmc_perf_fuse
from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_launcher import (
    PROBE_KS,
    find_launcher,
    launcher_or_compile_error,
)
from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_shim import UNSUPPORTED_K, shim_source
from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_source import parse_functions, strip_comments
from pytest_llmchallenges.child import llmc_entry
from pytest_llmchallenges.child.llmc_errors import InterfaceError, SubmissionError

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "pytest_llmchallenges" / "challenges" / "fuse" / "driver"


def folder(tmp_path: Path, source: str, manifest: str = "") -> Path:
    (tmp_path / "k.cu").write_text(source)
    if manifest:
        (tmp_path / "llmchallenge.toml").write_text(manifest)
    return tmp_path


def test_templated_k_in_a_namespace_with_explicit_instantiations(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        "namespace fx {\ntemplate <int K, typename T = float>\nvoid launch_fused_softmax_topk(const float* logits, "
        "int* idx, float* probs, int B, int T_, int V, cudaStream_t s = 0) {}\n"
        "template void launch_fused_softmax_topk<8>(const float*, int*, float*, int, int, int, cudaStream_t);\n"
        "template void launch_fused_softmax_topk<64>(const float*, int*, float*, int, int, int, cudaStream_t);\n}\n",
    )
    got = find_launcher(root).describe()
    assert (got["name"], got["line"], got["templated"], got["ks"]) == (
        "fx::launch_fused_softmax_topk",
        3,
        True,
        [8, 64],
    )
    assert got["roles"] == ["logits", "idx", "probs", "B", "T", "V", "stream"]


def test_run_time_k_dispatch_rows_and_temperature(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        "// a comment naming launch_fused_softmax_topk(float* a)\n"
        "cudaError_t softmax_topk(const float* __restrict__ input, long long* out_idx, float* out_vals, int rows,"
        " int vocab_size, int k, float temperature) {\n  switch (k) { case 1: break; case 4: break; }\n"
        "  if (k == 32) {}\n  return cudaSuccess;\n}\n",
    )
    got = find_launcher(root).describe()
    assert got["roles"] == ["logits", "idx", "probs", "rows", "V", "K", "temperature"]
    assert (got["ks"], got["idx_dtype"], got["prob_dtype"]) == ([1, 4, 32], "int64", "float32")


def test_a_candidate_that_does_not_fit_is_passed_over(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        "void launch_topk(float* a, float* b, char c) {}\n"
        "bool fused_topk(const float* x, int32_t* indices, double* p, size_t batch, size_t seq, size_t v, int topk,"
        " int extra = 3) { return true; }\n",
    )
    got = find_launcher(root).describe()
    assert (got["name"], got["prob_dtype"]) == ("fused_topk", "float64")
    assert got["roles"] == ["logits", "idx", "probs", "B", "T", "V", "K", "default"]


def test_the_manifest_names_the_launcher_its_roles_and_ks(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        "void my_kernel_host(const float* logits, int* idx, float* probs, int n, int m, int q) {}\n",
        '[roles]\nlauncher = "k.cu:my_kernel_host"\n[fuse]\nargs = "logits, idx, probs, rows, V, K"\nks = [4, 2]\n',
    )
    got = find_launcher(root).describe()
    assert (got["roles"], got["ks"]) == (["logits", "idx", "probs", "rows", "V", "K"], [2, 4])


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("template <typename T, int KK>\nvoid launch_softmax_topk(const T* l, int* i, T* p, int B, int T2, int V) {}\n",
         "tried: k.cu:2 template<typename T, int KK> launch_softmax_topk("),
        ("void fused(const half* logits, int* idx, float* probs, int B, int T, int V, int K) {}\n",
         "needs float logits, integer indices and float probabilities (read: logits half"),
        ("int main() { return 0; }\n", "host functions found: none;"),
    ],
)  # fmt: skip
def test_no_usable_launcher_is_an_interface_error_with_the_fix(tmp_path: Path, source: str, expect: str) -> None:
    with pytest.raises(InterfaceError) as info:
        find_launcher(folder(tmp_path, source))
    assert expect in str(info.value) and 'fix: add to llmchallenge.toml: [roles] launcher = "file.cu:' in str(
        info.value
    )
    assert not info.value.not_driven  # the verdict stays "interface", as before the driver was split


def test_a_markdown_only_folder_does_not_build(tmp_path: Path) -> None:
    root = folder(
        tmp_path, "```cuda\nvoid launch_fused_softmax_topk(const float* l, int* i, float* p, int V) {}\n```\n"
    )
    with pytest.raises(InterfaceError, match=r"Markdown files with a CUDA extension: k\.cu"):
        find_launcher(root)
    with pytest.raises(SubmissionError, match="Markdown with code inside, not CUDA source") as info:
        launcher_or_compile_error(root)
    assert info.value.category == "compile"


def test_the_reader_skips_kernels_and_keeps_line_numbers() -> None:
    code = strip_comments(
        '/* a\n b */ __global__ void k(float* x) {}\nconst char* s = "void f(int x) {}";\nvoid h(int a) {}\n'
    )
    functions, _ = parse_functions(code, "k.cu")
    assert [(f.name, f.line) for f in functions] == [("h", 4)]


def test_the_shim_dispatches_a_templated_k_and_counts_allocations(tmp_path: Path) -> None:
    root = folder(
        tmp_path, "template <int K>\nvoid launch_topk(const float* x, int* i, float* p, int B, int T, int V) {}\n"
    )
    launcher = find_launcher(root)
    assert launcher.ks == list(PROBE_KS)  # no instantiation seen: every K the tests may ask for
    text = shim_source(launcher, root / "k.cu", True, [1, 8], None)
    assert "case 8: return llmc_status([&]() -> decltype(auto) { return launch_topk<8>(" in text
    assert f"default: return {UNSUPPORTED_K};" in text and "#define cudaMalloc llmc_cudaMalloc" in text
    assert "int main()" not in text
    untracked = shim_source(launcher, root / "k.cu", False, [1], {"B": 1, "T": 2, "V": 3, "K": 1})
    assert "#define cudaMalloc" not in untracked and "const int B = 1, T = 2, V = 3, K = 1;" in untracked


def test_the_entry_points_are_declared() -> None:
    assert llmc_entry.declared("fuse") == {"build", "compile_check", "run_kernel_cases", "sanitize"}
    assert llmc_entry.declared("llmc_perf_fuse") == {"timed", "baseline"}
    assert llmc_entry.request(llmc_drive_fuse.run_kernel_cases, "fuse") == ("fuse", "run_kernel_cases")
    assert llmc_entry.request(llmc_perf_fuse.timed, "fuse") == ("llmc_perf_fuse", "timed")


def test_the_child_imports_the_driver_by_plain_names() -> None:
    """Inside a call only the driver and toolkit folders are on sys.path; the grader's package is not."""
    code = (
        "import sys; sys.modules['pytest_llmchallenges'] = None\n"
        "import llmc_drive_fuse, llmc_perf_fuse, llmc_errors, llmc_fuse_launcher\n"
        "assert llmc_fuse_launcher.InterfaceError is llmc_errors.InterfaceError\n"
    )
    env_path = f"{DRIVER}:{REPO / 'pytest_llmchallenges' / 'child'}"
    proc = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": env_path}, capture_output=True, text=True, cwd=DRIVER
    )
    assert proc.returncode == 0, proc.stderr
