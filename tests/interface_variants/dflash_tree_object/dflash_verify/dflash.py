"""Variant: a TreeStep dataclass, verify(prompt, tree, model) on a model with get_logits(tokens, mask) -> (L, V)
returned as (logits, None) tuple; the result a small dataclass; per-node recursion for acceptance."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TreeStep:
    tree_tokens: list
    tree_parents: list
    tree_children: list = field(default_factory=list)


class ToyLM:
    def __init__(self, vocab_size=1000, d_model=64, seed=0):
        r = np.random.default_rng(seed)
        self.E = r.standard_normal((vocab_size, d_model))
        self.W = r.standard_normal((d_model, vocab_size))

    def get_logits(self, tokens, mask=None):
        x = self.E[np.asarray(tokens)]
        n = len(x)
        m = np.tril(np.ones((n, n), bool)) if mask is None else mask
        s = np.where(m, x @ x.T, -np.inf)
        w = np.exp(s - s.max(1, keepdims=True))
        return (w / w.sum(1, keepdims=True)) @ x @ self.W, None


@dataclass
class Result:
    accepted_tokens: list
    new_token: int


def build_tree_mask(prompt_len, tree_parents):
    n = len(tree_parents)
    out = np.zeros((prompt_len + n, prompt_len + n), bool)
    out[:prompt_len, :prompt_len] = np.tril(np.ones((prompt_len, prompt_len), bool))
    out[prompt_len:, :prompt_len] = True
    for i in range(n):
        j = i
        while j >= 0:
            out[prompt_len + i, prompt_len + j] = True
            j = tree_parents[j]
    return out


def verify(prompt, tree: TreeStep, model, temperature=0.0):
    p = len(prompt)
    logits, _ = model.get_logits(list(prompt) + list(tree.tree_tokens), build_tree_mask(p, tree.tree_parents))
    pred = logits.argmax(-1)

    def best(node):
        want = pred[p - 1] if node < 0 else pred[p + node]
        options = [[]]
        for c, q in enumerate(tree.tree_parents):
            if q == node and tree.tree_tokens[c] == want:
                options.append([c] + best(c))
        return max(options, key=len)

    path = best(-1)
    last = path[-1] if path else -1
    return Result([int(tree.tree_tokens[i]) for i in path], int(pred[p - 1] if last < 0 else pred[p + last]))
