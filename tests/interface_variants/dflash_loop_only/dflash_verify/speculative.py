"""Variant: no verify function, only a generation loop with a draft model object; plain lists."""
import numpy as np


def build_tree_mask(prompt_len, tree_parents):
    n = len(tree_parents)
    mask = np.zeros((prompt_len + n, prompt_len + n), dtype=bool)
    for i in range(prompt_len):
        mask[i, : i + 1] = True
    for i in range(n):
        mask[prompt_len + i, :prompt_len] = True
        j = i
        while j >= 0:
            mask[prompt_len + i, prompt_len + j] = True
            j = tree_parents[j]
    return mask


def speculative_generate(prompt, target_model, draft_model, max_new_tokens):
    seq = list(prompt)
    while len(seq) - len(prompt) < max_new_tokens:
        tokens, parents = draft_model.propose(seq)
        p = len(seq)
        logits = target_model(seq + list(tokens), build_tree_mask(p, parents))
        pred = np.argmax(logits, axis=-1)
        node = -1
        while True:
            want = int(pred[p - 1] if node < 0 else pred[p + node])
            kids = [i for i, q in enumerate(parents) if q == node and tokens[i] == want]
            seq.append(want)
            if not kids:
                break
            node = kids[0]
    return seq
