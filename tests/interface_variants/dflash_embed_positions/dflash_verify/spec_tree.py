"""Variant: the target model in pieces, embed(token_ids, positions) (position embedding added at embedding
time), block(x, blocked) and head(h); a boolean mask with True = blocked; the result a list that already
ends with the correction or bonus token; the prompt embedded by one call and the tree by another."""

import numpy as np


class TargetLM:
    def __init__(self, n_vocab=1000, d=64, seed=11):
        g = np.random.default_rng(seed)
        self.n_vocab, self.d = n_vocab, d
        self.tok = g.standard_normal((n_vocab, d))
        self.pos = g.standard_normal((2048, d))
        self.a, self.b, self.c = (g.standard_normal((d, d)) / 8 for _ in range(3))
        self.w_out = g.standard_normal((d, n_vocab)) / 8

    def embed(self, token_ids, positions):
        return self.tok[np.asarray(token_ids)] + self.pos[np.asarray(positions)]

    def block(self, x, blocked):
        s = np.where(blocked, -np.inf, (x @ self.a) @ (x @ self.b).T / 8.0)
        w = np.exp(s - s.max(-1, keepdims=True))
        return 0.2 * x + (w / w.sum(-1, keepdims=True)) @ (x @ self.c)

    def head(self, h):
        return h @ self.w_out


def tree_blocked_mask(n_ctx, parents):
    n = n_ctx + len(parents)
    blocked = ~np.tril(np.ones((n, n), dtype=bool))
    blocked[n_ctx:, n_ctx:] = True
    for i in range(len(parents)):
        a = i
        while a >= 0:
            blocked[n_ctx + i, n_ctx + a] = False
            a = parents[a]
    return blocked


def speculative_verify(context, draft_tokens, draft_parents, lm, temperature=0):
    n_ctx = len(context)
    depth = []
    for q in draft_parents:
        depth.append(1 if q < 0 else depth[q] + 1)
    x = np.concatenate(
        [lm.embed(context, np.arange(n_ctx)), lm.embed(draft_tokens, n_ctx - 1 + np.array(depth))]
    )
    top = lm.head(lm.block(x, tree_blocked_mask(n_ctx, draft_parents))).argmax(-1)
    good = {}
    for i, q in enumerate(draft_parents):
        if (q < 0 or q in good) and draft_tokens[i] == top[n_ctx - 1 if q < 0 else n_ctx + q]:
            good[i] = depth[i]
    if not good:
        return [int(top[n_ctx - 1])]
    end = max(good, key=good.get)
    after = int(top[n_ctx + end])
    path = []
    while end >= 0:
        path.append(int(draft_tokens[end]))
        end = draft_parents[end]
    return path[::-1] + [after]
