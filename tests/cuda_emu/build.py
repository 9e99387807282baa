"""Build a folder of CUDA sources into a CPU shared library with the emulator (g++, no nvcc, no GPU).

The sources are transformed (transform.py) into ``out_dir``, compiled with the fake ``cuda_runtime.h`` forced
in first, and linked with the emulator runtime (emu.cpp, compiled once per flag set). Builds are cached by a
hash of everything that goes into them, so a pytest session pays for each distinct source once.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from tests.cuda_emu.transform import transform

EMU_DIR = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".cu", ".cuh", ".h", ".hpp", ".cpp")
BASE_FLAGS = ["-std=c++20", "-g", "-fPIC", "-pthread"]
FAST_FLAGS = ["-O2"]
# -O1 keeps ASan reports readable; no leak checking (the Python host owns most of the memory).
SANITIZE_FLAGS = ["-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


class BuildError(RuntimeError):
    """g++ rejected the (transformed) sources; the message holds its first error lines."""


def compiler() -> str | None:
    """Path of g++, or None where there is none (the emulated tests skip)."""
    return shutil.which("g++")


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines()
        raise BuildError(f"{' '.join(cmd[:3])} ... failed:\n" + "\n".join(lines[:15]))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def _runtime_key(flags: list[str]) -> str:
    return _digest(
        *(p.read_bytes() for p in (EMU_DIR / "emu.cpp", EMU_DIR / "cuda_runtime.h")), " ".join(flags).encode()
    )


def _runtime_object(out_dir: Path, flags: list[str]) -> Path:
    """emu.cpp compiled once per flag set (it is the slow part of a build)."""
    obj = out_dir / f"emu-{_runtime_key(flags)}.o"
    if not obj.exists():
        tmp = obj.with_suffix(".tmp.o")
        _run(["g++", *flags, f"-I{EMU_DIR}", "-c", str(EMU_DIR / "emu.cpp"), "-o", str(tmp)], out_dir)
        tmp.replace(obj)
    return obj


def build(source_dir: Path, out_dir: Path, sanitize: bool = False) -> Path:
    """Compile the ``.cu`` files of ``source_dir`` (with their headers) into a shared library; returns its path.

    ``sanitize`` adds AddressSanitizer and UBSan: the library must then be loaded in a process started with
    libasan preloaded (see README.md).
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = BASE_FLAGS + (SANITIZE_FLAGS if sanitize else FAST_FLAGS)
    files = sorted(p for p in source_dir.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    units = [p for p in files if p.suffix == ".cu"]
    if not units:
        raise BuildError(f"no .cu file in {source_dir}")
    texts = {p.relative_to(source_dir): transform(p.read_text(), p.name) for p in files}
    key = _digest(*(f"{rel}\0{text}".encode() for rel, text in sorted(texts.items())), _runtime_key(flags).encode())
    lib = out_dir / f"lib-{key}.so"
    if lib.exists():
        return lib
    emu_obj = _runtime_object(out_dir, flags)
    work = out_dir / f"src-{key}"
    for rel, text in texts.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    objects = []
    for unit in units:
        obj = work / unit.relative_to(source_dir).with_suffix(".o")
        cmd = ["g++", *flags, f"-I{EMU_DIR}", f"-I{work}", "-include", str(EMU_DIR / "cuda_runtime.h")]
        _run([*cmd, "-x", "c++", str(work / unit.relative_to(source_dir)), "-c", "-o", str(obj)], work)
        objects.append(str(obj))
    tmp = lib.with_suffix(".tmp.so")
    # -Bsymbolic: each library's emulator binds to its own globals when several builds share a process.
    _run(["g++", *flags, "-shared", "-Wl,-Bsymbolic", "-o", str(tmp), *objects, str(emu_obj), "-lm"], work)
    tmp.replace(lib)
    return lib
