"""Variant: model is the first argument; model.forward((batch, seq)) -> (batch, seq, vocab) logits; dict results."""
import numpy as np

VOCAB_SIZE = 1000


class TinyLM:
    def __init__(self, vocab_size=VOCAB_SIZE, d_model=64, seed=1):
        rng = np.random.default_rng(seed)
        self.E = rng.normal(size=(vocab_size, d_model))
        self.W = rng.normal(size=(d_model, vocab_size)) / 8

    def forward(self, token_ids):
        x = self.E[np.asarray(token_ids)]
        x = np.cumsum(x, axis=1) / np.arange(1, x.shape[1] + 1)[:, None]
        return x @ self.W


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def batched_beam_search(model, prompts, beam_width, max_new_tokens, alpha=0.6, eos_token_id=0):
    results = []
    for prompt in prompts:
        beams = [([], 0.0, False)]
        for _ in range(max_new_tokens):
            if all(f for _, _, f in beams):
                break
            pool = [b for b in beams if b[2]]
            for toks, acc, fin in beams:
                if fin:
                    continue
                lp = log_softmax(model.forward(np.array([list(prompt) + toks]))[0, -1])
                for t in np.argsort(lp)[::-1][: 2 * beam_width]:
                    pool.append((toks + [int(t)], acc + float(lp[t]), int(t) == eos_token_id))
            pool.sort(key=lambda b: b[1] / len(b[0]) ** alpha, reverse=True)
            beams = pool[:beam_width]
        beams.sort(key=lambda b: b[1] / len(b[0]) ** alpha, reverse=True)
        results.append([{"tokens": t, "score": a / len(t) ** alpha, "log_prob": a, "finished": f} for t, a, f in beams])
    return results


if __name__ == "__main__":
    print(batched_beam_search(TinyLM(), [[1, 2, 3]], 2, 5))
