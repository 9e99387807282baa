"""Variant: the prompt's step-4 accept loop followed to the letter where it is greedy-consistent: nodes in
index order, subtree invalidation, and STOP at the first rejection of any node (not the longest matching
path); a node is checked at its parent's position. Positions are implicit (the model has none)."""

import numpy as np


class MinimalLM:
    def __init__(self, vocab_size=1000, d_model=64, seed=3):
        rng = np.random.default_rng(seed)
        self.emb = rng.normal(size=(vocab_size, d_model))
        self.wq, self.wk, self.wv = (rng.normal(size=(d_model, d_model)) / 8 for _ in range(3))
        self.out = rng.normal(size=(d_model, vocab_size)) / 8

    def forward(self, tokens, mask):
        x = self.emb[np.asarray(tokens)]
        s = (x @ self.wq) @ (x @ self.wk).T / 8.0
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        h = 0.3 * x + (p / p.sum(-1, keepdims=True)) @ (x @ self.wv)
        return h @ self.out


def build_tree_mask(prompt_len, tree_parents):
    size = prompt_len + len(tree_parents)
    m = np.tril(np.ones((size, size), dtype=bool))
    m[prompt_len:, prompt_len:] = False
    for i in range(len(tree_parents)):
        j = i
        while j != -1:
            m[prompt_len + i, prompt_len + j] = True
            j = tree_parents[j]
    return m


def verify_and_accept(prompt_tokens, tree_tokens, tree_parents, target_model, temperature=0.0):
    p = len(prompt_tokens)
    logits = target_model.forward(list(prompt_tokens) + list(tree_tokens), build_tree_mask(p, tree_parents))
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    rejected = set()
    accepted, last = [], -1
    for i, parent in enumerate(tree_parents):
        if parent in rejected:  # 4a: an ancestor was rejected (rejection propagates down, so the parent is)
            rejected.add(i)
            continue
        prediction = int(np.argmax(log_probs[p - 1 if parent < 0 else p + parent]))
        if tree_tokens[i] == prediction:
            if parent == last:  # extends the accepted path; a match elsewhere repeats a token already kept
                accepted.append(int(tree_tokens[i]))
                last = i
            continue
        rejected.add(i)
        if parent == last:  # 4d: the replacement is the next token of the path
            return accepted, prediction
        return accepted, None  # 4d: STOP; a replacement here would repeat a token already kept
    return accepted, int(np.argmax(log_probs[p - 1 if last < 0 else p + last]))
