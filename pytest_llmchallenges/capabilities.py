"""What this machine can run: a CUDA device, a CUDA compiler, MLX. Each answer is one line when absent."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys


@functools.cache
def missing(capability: str) -> str | None:
    """None when the capability is present, else the one-line reason a marked test is skipped."""
    if capability == "nvcc":
        if shutil.which("nvcc") or importlib.util.find_spec("cupy") is not None:
            return None
        return "needs nvcc (the CUDA compiler) or CuPy's NVRTC: neither is installed"
    if capability == "gpu":
        if importlib.util.find_spec("cupy") is None:
            return "needs a CUDA GPU and CuPy (pip install 'pytest-llmchallenges[gpu]'): CuPy is not installed"
        if not os.path.exists("/dev/nvidia0") and not shutil.which("nvidia-smi"):
            return "needs a CUDA GPU: no NVIDIA device on this machine"
        probe = "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0"
        if subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode:
            return "needs a CUDA GPU: CuPy sees no usable device"
        return None
    if capability == "mlx":
        if importlib.util.find_spec("mlx") is None:
            return "needs MLX (pip install 'pytest-llmchallenges[mlx]'): mlx is not installed"
        probe = "import mlx.core as mx; mx.eval(mx.ones(2) + 1)"
        if subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode:
            return "needs MLX: mlx is installed but does not run here"
        return None
    raise ValueError(capability)


# Report names of the capabilities (JSON keys), the markers that need them, and how a partial grade names them.
MARKERS = {"gpu": "cuda_gpu", "nvcc": "nvcc", "mlx": "mlx"}
NAMES = {"cuda_gpu": "a CUDA GPU", "nvcc": "nvcc", "mlx": "MLX", "compute_sanitizer": "compute-sanitizer"}
LABELS = {key: "no " + name.removeprefix("a ") for key, name in NAMES.items()}
# Skip reasons raised inside a test (a driver's "not here" answer) that mean a capability, not the answer.
_REASON_WORDS = (
    ("compute-sanitizer", "compute_sanitizer"),
    ("nvcc", "nvcc"),
    ("mlx", "mlx"),
    ("cuda gpu", "cuda_gpu"),
    ("cupy", "cuda_gpu"),
)


def present() -> dict[str, bool]:
    """This machine's capabilities, as the report states them: two runs on different machines differ here."""
    return {MARKERS[m]: missing(m) is None for m in MARKERS}


def of_skip(reason: str) -> str | None:
    """The capability a skip reason names (None when the skip is about something else): the reasons of
    :func:`missing` and the drivers' "not installed here" answers."""
    text = reason.lower()
    if not (text.startswith("needs ") or "not installed" in text or "no nvidia" in text):
        return None
    return next((name for word, name in _REASON_WORDS if word in text), None)
