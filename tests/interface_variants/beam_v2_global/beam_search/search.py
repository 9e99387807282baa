"""Variant: module-global model imported by plain name; per-beam 1-D calls; (sequences, scores) per item."""
import numpy as np
from model import LanguageModel

MODEL = LanguageModel()


def batched_beam_search(prompts, beam_width, max_new_tokens, alpha, eos_token_id):
    out = []
    for prompt in prompts:
        live = [((), 0.0)]
        done = []
        for _ in range(max_new_tokens):
            if not live:
                break
            cands = [(s, a, True) for s, a in done]
            for seq, acc in live:
                lp = MODEL.get_log_probs(np.array(list(prompt) + list(seq)))
                idx = np.argpartition(-lp, min(2 * beam_width, len(lp)) - 1)[: 2 * beam_width]
                cands += [(seq + (int(t),), acc + lp[t], int(t) == eos_token_id) for t in idx]
            cands.sort(key=lambda c: -c[1] / len(c[0]) ** alpha)
            kept = cands[:beam_width]
            done = [(s, a) for s, a, f in kept if f]
            live = [(s, a) for s, a, f in kept if not f]
        final = sorted(done + live, key=lambda c: -c[1] / len(c[0]) ** alpha)
        out.append(([list(s) for s, _ in final], np.array([a / len(s) ** alpha for s, a in final])))
    return out
