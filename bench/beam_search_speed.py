"""Performance goal of the beam_search reference: B=8 prompts, K=4 beams, 64 new tokens in under 2 s.

    python bench/beam_search_speed.py

Runs reference/beam_search directly (not in the sandbox) with its own MinimalLM (vocab 1000, d_model 64, one
block), prompts of lengths 3 to 17, alpha=0.6, and an EOS token the model rarely picks, so that the search
runs the full 64 steps (the slowest case). Prints the best wall time of 3 runs, the time per step and the
number of model calls. BLAS runs single-threaded, as in the grading sandbox, unless the environment says
otherwise. Exit status 1 if the goal is missed.
"""

from __future__ import annotations

import sys

from benchutil import ROOT, best_seconds, load, single_threaded_blas

single_threaded_blas()  # before numpy loads its BLAS

import numpy as np  # noqa: E402

B, K, NEW_TOKENS, ALPHA, GOAL_S = 8, 4, 64, 0.6, 2.0


class CountingModel:
    """The reference's model, counting the calls and rows the search makes."""

    def __init__(self, model: object) -> None:
        self.model, self.calls, self.rows = model, 0, 0

    def next_token_log_probs(self, sequences: list[list[int]]) -> np.ndarray:
        self.calls += 1
        self.rows += len(sequences)
        return self.model.next_token_log_probs(sequences)  # type: ignore[attr-defined]


def main() -> int:
    ref = load(ROOT / "reference" / "beam_search" / "beam_search.py")
    rng = np.random.default_rng(0)
    prompts = [[int(t) for t in rng.integers(1, 1000, size=3 + 2 * i)] for i in range(B)]
    model = ref.MinimalLM()
    first = model.next_token_log_probs(prompts)
    eos = int(np.argmin(first.max(axis=0)))  # the token least likely anywhere at the start

    def run() -> tuple[list, CountingModel]:
        counting = CountingModel(model)
        return ref.batched_beam_search(prompts, K, NEW_TOKENS, ALPHA, eos, model=counting), counting

    best, (result, counting) = best_seconds(run)
    lengths = sorted({len(t) for item in result for t, _ in item})
    print(f"beam_search reference: B={B}, K={K}, {NEW_TOKENS} new tokens, alpha={ALPHA}, EOS={eos}")
    print(f"  best of 3: {best:.3f} s ({1000 * best / counting.calls:.1f} ms per step over {counting.calls} steps)")
    print(f"  {counting.rows} sequences scored; returned lengths {lengths[0]}..{lengths[-1]}")
    print(f"  goal < {GOAL_S:.1f} s: {'met' if best < GOAL_S else 'MISSED'}")
    return 0 if best < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
