"""Variant: embeddings + block + head, additive float32 masks, dict result, other names."""
import numpy as np


class TinyTransformer:
    def __init__(self, vocab=1000, dim=64, heads=4, seed=0):
        r = np.random.default_rng(seed)
        self.vocab, self.dim, self.heads = vocab, dim, heads
        self.E = r.standard_normal((vocab, dim)).astype(np.float32)
        self.Wq, self.Wk, self.Wv = (r.standard_normal((dim, dim)).astype(np.float32) / 8 for _ in range(3))
        self.U = r.standard_normal((dim, vocab)).astype(np.float32) / 8

    def embed(self, tokens):
        return self.E[np.asarray(tokens)]

    def block(self, x, mask_add):
        q, k, v = x @ self.Wq, x @ self.Wk, x @ self.Wv
        s = q @ k.T / np.sqrt(self.dim) + mask_add
        s = np.exp(s - s.max(-1, keepdims=True))
        return x + (s / s.sum(-1, keepdims=True)) @ v

    def lm_head(self, h):
        return h @ self.U


def make_tree_mask(n_prompt, parents):
    n = len(parents)
    m = np.full((n_prompt + n, n_prompt + n), -np.inf, dtype=np.float32)
    for i in range(n_prompt):
        m[i, : i + 1] = 0
    for i in range(n):
        m[n_prompt + i, :n_prompt] = 0
        j = i
        while j >= 0:
            m[n_prompt + i, n_prompt + j] = 0
            j = parents[j]
    return m


def verify_tree(context, draft_tokens, parents, model, temperature=0.0):
    p = len(context)
    x = np.concatenate([model.embed(context), model.embed(draft_tokens)])
    logits = model.lm_head(model.block(x, make_tree_mask(p, parents)))
    pred = logits.argmax(-1)
    node, out = -1, []
    while True:
        want = pred[p - 1] if node < 0 else pred[p + node]
        kids = [i for i, q in enumerate(parents) if q == node and draft_tokens[i] == want]
        if not kids:
            return {"accepted": out, "bonus": int(want)}
        node = kids[0]
        # prefer a child that has children of its own? greedy: any matching child gives the same token;
        # but the deepest path matters for efficiency, so look ahead
        out.append(int(want))
