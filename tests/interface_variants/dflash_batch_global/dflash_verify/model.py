import numpy as np


class MinimalLM:
    """(1, L) ids and a (1, 1, L, L) boolean mask in, (1, L, V) log-probs out."""

    def __init__(self, vocab_size=1000, d_model=64, seed=0):
        r = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.emb = r.standard_normal((vocab_size, d_model))
        self.wo = r.standard_normal((d_model, vocab_size)) / 8

    def forward(self, input_ids, attention_mask=None):
        ids = np.asarray(input_ids)[0]
        n = len(ids)
        m = np.tril(np.ones((n, n), bool)) if attention_mask is None else attention_mask[0, 0]
        x = self.emb[ids]
        s = np.where(m, x @ x.T / 8, -np.inf)
        w = np.exp(s - s.max(-1, keepdims=True))
        h = (w / w.sum(-1, keepdims=True)) @ x
        z = h @ self.wo
        z = z - z.max(-1, keepdims=True)
        return (z - np.log(np.exp(z).sum(-1, keepdims=True)))[None]
