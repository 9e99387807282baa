"""Variant: model as the last argument named lm; lm.next_token_logprobs(list of ragged sequences) -> (n, V)
log-probabilities; results as (tokens, score, logprob) triples."""
import numpy as np


class ProbModel:
    def __init__(self, vocab_size=1000):
        self.table = np.random.default_rng(5).dirichlet(np.ones(vocab_size), size=vocab_size)

    def next_token_logprobs(self, sequences):
        return np.log(np.stack([self.table[s[-1]] for s in sequences]))


def beam_search_batch(prompt_token_ids, k, max_new_tokens, length_penalty_alpha, eos_id, lm):
    def pen(b):
        return b[1] / len(b[0]) ** length_penalty_alpha

    beams = [[((), 0.0, False)] for _ in prompt_token_ids]
    for _ in range(max_new_tokens):
        rows = [(i, b) for i, bs in enumerate(beams) for b in bs if not b[2]]
        if not rows:
            break
        logp = lm.next_token_logprobs([list(prompt_token_ids[i]) + list(b[0]) for i, b in rows])
        pools = [[b for b in bs if b[2]] for bs in beams]
        for (i, b), lp in zip(rows, logp):
            for t in np.argsort(-lp, kind="stable")[: 2 * k]:
                pools[i].append((b[0] + (int(t),), b[1] + float(lp[t]), int(t) == eos_id))
        beams = [sorted(p, key=pen, reverse=True)[:k] for p in pools]
    return [[(list(b[0]), pen(b), b[1]) for b in sorted(bs, key=pen, reverse=True)] for bs in beams]
