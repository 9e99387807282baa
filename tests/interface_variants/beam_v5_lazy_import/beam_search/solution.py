"""Variant: lazily imports its model inside the search; model.logits(list of token lists) -> (n, V) logits;
results as numpy int arrays with float scores in tuples; model.logits takes a lengths argument too."""
import numpy as np


def batched_beam_search(prompts, beam_width, max_new_tokens, alpha=0.6, eos_token_id=2):
    from lm import SmallLM

    lm = SmallLM()
    out = []
    for prompt in prompts:
        beams = [(np.array([], dtype=int), 0.0, False)]
        for _ in range(max_new_tokens):
            active = [b for b in beams if not b[2]]
            if not active:
                break
            seqs = [list(prompt) + b[0].tolist() for b in active]
            z = lm.logits(seqs, [len(s) for s in seqs])
            z = z - z.max(1, keepdims=True)
            lp = z - np.log(np.exp(z).sum(1, keepdims=True))
            pool = [b for b in beams if b[2]]
            for b, row in zip(active, lp):
                for t in np.argsort(-row)[: 2 * beam_width]:
                    pool.append((np.append(b[0], t), b[1] + row[t], t == eos_token_id))
            pool.sort(key=lambda b: -b[1] / len(b[0]) ** alpha)
            beams = pool[:beam_width]
        out.append([(b[0], b[1] / len(b[0]) ** alpha) for b in sorted(beams, key=lambda b: -b[1] / len(b[0]) ** alpha)])
    return out
