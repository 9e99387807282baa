"""The challenges: names, difficulty, limits, and what their prompts ask that no test can judge.

The eight built-in ones are rows of the table below. Another installed package adds its own through
``registry.py`` (a pytest hook or an entry point); it then sits in the same table, so that everything that
reads it (markers, scaffold, reports, scoring, the sandbox) treats it like a built-in one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DIFFICULTIES = ("medium", "hard", "extra_hard", "research")
DIFFICULTY_WEIGHT = {"medium": 1.0, "hard": 2.0, "extra_hard": 3.0, "research": 3.0}


@dataclass(frozen=True)
class Challenge:
    name: str
    difficulty: str
    label: str  # the difficulty label of the original scaffold script
    summary: str
    timeout: float  # default seconds per sandboxed call
    not_graded: tuple[str, ...] = field(default=())
    # The CUDA runtime fails under Landlock (cudaErrorOperatingSystem, seen on an H200 host), so calls of a
    # challenge that runs kernels keep the audit-hook write guard but not the kernel-enforced one.
    cuda_runtime: bool = False
    # Where a third-party challenge's pieces live (None for a built-in one: the packaged folders). The child
    # may read ``driver_dir`` and nothing else of ``package_dir``: suites, oracles and prompts stay hidden.
    prompt: Path | None = None  # the prompt the scaffold writes as PROMPT.md
    suite: Path | None = None  # a suite module or a folder of them, collected like the packaged suites
    driver_dir: Path | None = None  # the folder holding ``llmc_drive_<name>.py`` (child-side code only)
    package_dir: Path | None = None  # the grader-side folder hidden from the child (suite, oracle, prompt)
    reference: Path | None = None  # a submission folder holding the reference answer in ``<name>/``
    needs: tuple[str, ...] = field(default=())  # capability markers every test needs: "gpu", "nvcc", "mlx"

    @property
    def builtin(self) -> bool:
        return self.package_dir is None


CHALLENGES: dict[str, Challenge] = {
    c.name: c
    for c in (
        Challenge(
            "backwards",
            "medium",
            "MEDIUM",
            "Layer Norm backward pass (manual gradients)",
            20.0,
            (
                "discussion of where numerical instability can occur",
                "time and memory complexity analysis",
                "explanation of fusing the backward into one GPU kernel",
            ),
        ),
        Challenge(
            "fuse",
            "medium",
            "MEDIUM",
            "Fused softmax + top-K GPU kernel (CUDA)",
            120.0,
            (
                "memory access pattern explanation",
                "warp-level optimization strategy",
                "complexity analysis (bandwidth vs compute bound)",
                "comparison to a naive implementation",
            ),
            cuda_runtime=True,
        ),
        Challenge(
            "kv",
            "medium",
            "MEDIUM",
            "KV-cache system design (variable-length batching)",
            20.0,
            (
                "data structure layout (memory format) description",
                "analysis of memory growth over long sequences",
                "at least two proposed optimizations (paged attention, chunking, compression)",
                "explanation of the mapping to GPU execution",
            ),
        ),
        Challenge(
            "beam_search",
            "hard",
            "HARD",
            "Batched beam search with length penalty + EOS",
            30.0,
            ("comments explaining why finished beams must not be removed from the pool",),
        ),
        Challenge(
            "flash_attention",
            "hard",
            "HARD",
            "Tiled Flash Attention forward pass (online softmax)",
            60.0,
            (
                "comments on why the rescale factor is exp(m_old - m_new)",
                "comments on the fully masked first KV tile hazard",
            ),
        ),
        Challenge(
            "dflash_verify",
            "extra_hard",
            "EXTRA HARD",
            "DFlash tree attention verification (speculative decoding)",
            30.0,
        ),
        Challenge(
            "flash_attention_bwd",
            "extra_hard",
            "EXTRA HARD",
            "Flash Attention backward pass (tiled, recompute, dsoftmax)",
            120.0,
        ),
        Challenge(
            "ternary_training",
            "research",
            "OPEN-ENDED RESEARCH",
            "Native ternary-weight LLM training from scratch (BitNet b1.58 lineage, STE, group-wise quantization)",
            120.0,
            (
                "explanation of the training procedure and hyperparameters",
                "engineering judgment (group size, mean vs max scale, what broke and how it was fixed)",
                "full training run at the reported scale (reported numbers are shown, not re-run)",
            ),
        ),
    )
}

BUILTIN: frozenset[str] = frozenset(CHALLENGES)


class _Names(Sequence[str]):
    """The challenge names in table order, read live: a challenge registered later is listed everywhere."""

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(CHALLENGES))

    def __len__(self) -> int:
        return len(CHALLENGES)

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        return tuple(CHALLENGES)[index]

    def __contains__(self, name: object) -> bool:
        return name in CHALLENGES

    def __repr__(self) -> str:
        return repr(tuple(CHALLENGES))


CHALLENGE_NAMES: Sequence[str] = _Names()
