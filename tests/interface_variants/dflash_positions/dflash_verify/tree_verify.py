"""Variant: a Hugging Face style target model, called as lm(input_ids (1, L), attention_mask (1, 1, L, L)
additive, position_ids (1, L)) -> logits (1, L, V), with explicit position ids (prompt length - 1 + depth for
a tree node); other function names; the result as a dict {"accepted": path, "next_token": token}."""

import numpy as np


class TinyCausalLM:
    def __init__(self, vocab_size=1000, hidden_size=64, num_heads=4, max_positions=1024, seed=7):
        rng = np.random.default_rng(seed)
        h = hidden_size
        self.vocab_size, self.hidden_size, self.num_heads = vocab_size, hidden_size, num_heads
        self.wte = rng.normal(size=(vocab_size, h))
        self.wpe = rng.normal(size=(max_positions, h))
        self.q, self.k, self.v, self.o = (rng.normal(size=(h, h)) / np.sqrt(h) for _ in range(4))
        self.lm_head = rng.normal(size=(h, vocab_size)) / np.sqrt(h)

    def __call__(self, input_ids, attention_mask=None, position_ids=None):
        ids = np.asarray(input_ids)
        b, n = ids.shape
        if position_ids is None:
            position_ids = np.broadcast_to(np.arange(n), (b, n))
        if attention_mask is None:
            attention_mask = np.where(np.tril(np.ones((n, n))) > 0, 0.0, -1e9)[None, None]
        x = self.wte[ids] + self.wpe[np.asarray(position_ids)]
        nh, dh = self.num_heads, self.hidden_size // self.num_heads

        def split(w):
            return (x @ w).reshape(b, n, nh, dh).transpose(0, 2, 1, 3)

        s = split(self.q) @ split(self.k).transpose(0, 1, 3, 2) / np.sqrt(dh) + attention_mask
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ split(self.v)
        x = 0.5 * x + a.transpose(0, 2, 1, 3).reshape(b, n, -1) @ self.o
        return x @ self.lm_head


def make_tree_mask(num_prompt, parent_idx):
    total = num_prompt + len(parent_idx)
    mask = np.full((total, total), -1e9)
    for i in range(num_prompt):
        mask[i, : i + 1] = 0.0
    for node in range(len(parent_idx)):
        row = num_prompt + node
        mask[row, :num_prompt] = 0.0
        while node >= 0:
            mask[row, num_prompt + node] = 0.0
            node = parent_idx[node]
    return mask


def node_depths(parent_idx):
    out = []
    for parent in parent_idx:
        out.append(1 if parent < 0 else out[parent] + 1)
    return out


def verify_tree(prefix, draft_tokens, parent_idx, lm, temperature=0.0):
    n_prefix = len(prefix)
    depth = node_depths(parent_idx)
    positions = list(range(n_prefix)) + [n_prefix - 1 + d for d in depth]
    ids = np.array([list(prefix) + list(draft_tokens)])
    mask = make_tree_mask(n_prefix, parent_idx)[None, None]
    logits = lm(ids, attention_mask=mask, position_ids=np.array([positions]))[0]
    best = logits.argmax(-1)
    ok = []
    for node, parent in enumerate(parent_idx):
        source = n_prefix - 1 if parent < 0 else n_prefix + parent
        ok.append((parent < 0 or ok[parent]) and int(draft_tokens[node]) == int(best[source]))
    if not any(ok):
        return {"accepted": [], "next_token": int(best[n_prefix - 1])}
    end = max((node for node in range(len(ok)) if ok[node]), key=lambda node: depth[node])
    path = []
    node = end
    while node >= 0:
        path.insert(0, int(draft_tokens[node]))
        node = parent_idx[node]
    return {"accepted": path, "next_token": int(best[n_prefix + end])}
