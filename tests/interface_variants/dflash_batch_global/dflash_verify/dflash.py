"""Variant: module-global model, no model parameter; result: accepted list that already ends with the
correction; ancestors by a set; the (1, L) batch convention of model.py."""
import numpy as np
from model import MinimalLM

MODEL = MinimalLM()


def build_tree_mask(prompt_len, tree_parents):
    n = len(tree_parents)
    m = np.zeros((prompt_len + n, prompt_len + n), dtype=bool)
    m[:prompt_len, :prompt_len] = np.tril(np.ones((prompt_len, prompt_len), dtype=bool))
    m[prompt_len:, :prompt_len] = True
    for i in range(n):
        j = i
        while j != -1:
            m[prompt_len + i, prompt_len + j] = True
            j = tree_parents[j]
    return m


def verify_and_accept(prompt_tokens, tree_tokens, tree_parents, temperature=0):
    p = len(prompt_tokens)
    mask = build_tree_mask(p, tree_parents)[None, None]
    lp = MODEL.forward(np.array([list(prompt_tokens) + list(tree_tokens)]), attention_mask=mask)[0]
    pred = lp.argmax(-1)
    depth = []
    for q in tree_parents:
        depth.append(1 if q < 0 else depth[q] + 1)
    ok = [False] * len(tree_tokens)
    for i, q in enumerate(tree_parents):
        ok[i] = (q < 0 or ok[q]) and tree_tokens[i] == pred[p - 1 if q < 0 else p + q]
    good = [i for i in range(len(ok)) if ok[i]]
    if not good:
        return [int(pred[p - 1])]
    best = max(good, key=lambda i: depth[i])
    path = []
    j = best
    while j != -1:
        path.append(int(tree_tokens[j]))
        j = tree_parents[j]
    return path[::-1] + [int(pred[p + best])]
