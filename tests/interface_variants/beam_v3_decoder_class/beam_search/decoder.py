"""Variant: decoder class taking the model in its constructor; model(input_ids, attention_mask) on a
left-padded batch -> (n, vocab) last-position logits; hypotheses as dataclasses with a score property."""
from dataclasses import dataclass, field

import numpy as np


class MinimalTransformer:
    def __init__(self, vocab_size=1000, d_model=64):
        rng = np.random.default_rng(3)
        self.emb = rng.standard_normal((vocab_size, d_model))
        self.w = rng.standard_normal((d_model, vocab_size)) * 0.3

    def __call__(self, input_ids, attention_mask=None):
        x = self.emb[input_ids] * attention_mask[..., None]
        return np.tanh(x.sum(1) / attention_mask.sum(1, keepdims=True)) @ self.w


@dataclass
class Hypothesis:
    tokens: list = field(default_factory=list)
    logprob: float = 0.0
    finished: bool = False
    alpha: float = 0.6

    @property
    def score(self):
        return self.logprob / max(len(self.tokens), 1) ** self.alpha


class BeamSearchDecoder:
    def __init__(self, model, beam_width=4, alpha=0.6, eos_token_id=0, pad_id=0):
        self.model, self.k, self.alpha, self.eos, self.pad = model, beam_width, alpha, eos_token_id, pad_id

    def search(self, prompts, max_new_tokens=20):
        hyps = [[Hypothesis(alpha=self.alpha)] for _ in prompts]
        for _ in range(max_new_tokens):
            todo = [(i, h) for i, hs in enumerate(hyps) for h in hs if not h.finished]
            if not todo:
                break
            seqs = [list(prompts[i]) + h.tokens for i, h in todo]
            width = max(len(s) for s in seqs)
            ids = np.full((len(seqs), width), self.pad)
            mask = np.zeros((len(seqs), width))
            for r, s in enumerate(seqs):
                ids[r, width - len(s):] = s
                mask[r, width - len(s):] = 1
            logits = self.model(ids, attention_mask=mask)
            logp = logits - logits.max(1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
            pools = [[h for h in hs if h.finished] for hs in hyps]
            for (i, h), row in zip(todo, logp):
                for t in np.argsort(-row)[: 2 * self.k]:
                    pools[i].append(Hypothesis(h.tokens + [int(t)], h.logprob + row[t], int(t) == self.eos, self.alpha))
            hyps = [sorted(p, key=lambda h: -h.score)[: self.k] for p in pools]
        return [sorted(hs, key=lambda h: -h.score) for hs in hyps]
