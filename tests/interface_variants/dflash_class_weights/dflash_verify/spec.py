"""Variant: a verifier class holding the model; the verifier reads the embedding tables itself and calls
model.transformer(x, mask); tree given as parents, children computed; returns (new_token, accepted)."""
import numpy as np


class Target:
    def __init__(self, vocab=1000, d_model=64, max_len=256, seed=0):
        r = np.random.default_rng(seed)
        self.token_embedding = r.standard_normal((vocab, d_model))
        self.pos_embedding = r.standard_normal((max_len, d_model)) * 0.1
        self.w = r.standard_normal((d_model, vocab)) / 8

    def transformer(self, x, mask):
        s = np.where(mask, x @ x.T / 8, -1e9)
        w = np.exp(s - s.max(-1, keepdims=True))
        return ((w / w.sum(-1, keepdims=True)) @ x) @ self.w


def tree_attention_mask(prompt_len, tree_parents):
    n = len(tree_parents)
    anc = np.eye(n, dtype=bool)
    for i, q in enumerate(tree_parents):
        if q >= 0:
            anc[i] |= anc[q]
    top = np.hstack([np.tril(np.ones((prompt_len, prompt_len), bool)), np.zeros((prompt_len, n), bool)])
    bottom = np.hstack([np.ones((n, prompt_len), bool), anc])
    return np.vstack([top, bottom]).astype(np.float64)  # 1.0 = attend


class TreeVerifier:
    def __init__(self, target_model):
        self.model = target_model

    def verify_and_accept(self, prompt, tree_tokens, tree_parents, temperature=0.0):
        p, n = len(prompt), len(tree_tokens)
        m = tree_attention_mask(p, tree_parents) > 0.5
        depth = np.ones(n, int)
        for i, q in enumerate(tree_parents):
            if q >= 0:
                depth[i] = depth[q] + 1
        positions = np.concatenate([np.arange(p), p - 1 + depth])
        ids = np.array(list(prompt) + list(tree_tokens))
        x = self.model.token_embedding[ids] + self.model.pos_embedding[positions]
        pred = self.model.transformer(x, m).argmax(-1)
        node, out = -1, []
        while True:
            want = pred[p - 1] if node < 0 else pred[p + node]
            kids = [i for i, q in enumerate(tree_parents) if q == node and tree_tokens[i] == want]
            if not kids:
                return int(want), out
            # the deepest continuation among equal children
            node = max(kids, key=lambda k: _height(k, tree_parents, tree_tokens, pred, p))
            out.append(int(want))


def _height(k, parents, tokens, pred, p):
    kids = [i for i, q in enumerate(parents) if q == k and tokens[i] == pred[p + k]]
    return 1 + max((_height(c, parents, tokens, pred, p) for c in kids), default=0)
