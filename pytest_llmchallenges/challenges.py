"""The eight challenges: names, difficulty, limits, and what their prompts ask that no test can judge."""

from __future__ import annotations

from dataclasses import dataclass, field

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

CHALLENGE_NAMES: tuple[str, ...] = tuple(CHALLENGES)
