"""Tree-attention verification for DFlash-style speculative decoding, in NumPy.

A draft proposes a *tree* of candidate continuations; the target model scores every node in one forward pass
over ``[prompt | tree]`` with a tree-shaped attention mask, and greedy verification keeps the longest path of
the tree that the target itself would have generated.

Two points where the prompt's literal text would break the golden property (at temperature 0 the output must
equal the target's own greedy decoding):

1. *Which logits check a node.* The logits at position j predict the token that comes **after** position j.
   So node i is checked against the prediction at its **parent's** position (the last prompt position P-1 for a
   root), not at its own position P+i: the logits at P+i already know node i and predict its children.
2. *Greedy acceptance is a walk, not a scan.* "Accept every node that matches, in index order" accepts a node,
   then checks its sibling against the same prediction, rejects it and emits that prediction again: a
   duplicated token. A node is accepted exactly when it *and all its ancestors* match (that is subtree
   invalidation); the output is the deepest accepted node's path plus the target's next token after it.

Returned convention: ``verify_and_accept`` gives ``(accepted_tokens, new_token)``: the drafted tokens of the
accepted path, and the target's greedy token after that path: the correction where the walk stopped at a
mismatch, or a free bonus token where it ran off a leaf. A cycle therefore always appends
``accepted_tokens + [new_token]`` (at least one token, so decoding always progresses).

Run this file to execute the prompt's three tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Draft = Callable[[list[int]], tuple[list[int], list[int]]]


class MinimalLM:
    """A random one-layer transformer (pre-norm attention + MLP, tied-free LM head), float64.

    Positions enter through a learned absolute position embedding indexed by an explicit ``positions`` array.
    For a tree node the right position is *prompt length - 1 + depth* (where the token would sit if its path
    were decoded autoregressively), not its index in the flattened ``[prompt | tree]`` sequence; with that, the
    logits at a node equal the autoregressive logits of prompt + path, which is what verification relies on.
    """

    def __init__(
        self, vocab_size: int = 1000, d_model: int = 64, n_heads: int = 4, max_len: int = 512, seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        d = d_model
        self.vocab_size, self.d_model, self.n_heads = vocab_size, d_model, n_heads
        self.tok_emb = rng.standard_normal((vocab_size, d))
        self.pos_emb = 0.5 * rng.standard_normal((max_len, d))
        self.w_qkv = rng.standard_normal((d, 3 * d)) / np.sqrt(d)
        self.w_out = rng.standard_normal((d, d)) / np.sqrt(d)
        self.w_up = rng.standard_normal((d, 4 * d)) / np.sqrt(d)
        self.w_down = rng.standard_normal((4 * d, d)) / np.sqrt(4 * d)
        self.w_head = rng.standard_normal((d, vocab_size)) * (3.0 / np.sqrt(d))

    def forward(
        self, tokens: Sequence[int], mask: np.ndarray | None = None, positions: np.ndarray | None = None
    ) -> np.ndarray:
        """Logits (L, V) for tokens (L,). ``mask``: boolean (L, L), True = may attend; None = causal."""
        ids = np.asarray(tokens, dtype=np.int64)
        length = len(ids)
        if mask is None:
            mask = np.tril(np.ones((length, length), dtype=bool))
        if positions is None:
            positions = np.arange(length)
        x = self.tok_emb[ids] + self.pos_emb[positions]
        x = 0.3 * x + self._attention(_layer_norm(x), mask)  # weak residual: predictions depend on context
        x = x + np.maximum(_layer_norm(x) @ self.w_up, 0.0) @ self.w_down
        return _layer_norm(x) @ self.w_head

    __call__ = forward

    def _attention(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        length, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        q, k, v = (x @ self.w_qkv).reshape(length, 3, h, dh).transpose(1, 2, 0, 3)  # each (h, L, dh)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
        scores = np.where(mask, scores, -np.inf)  # every row keeps at least itself, so no row is all -inf
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        return (weights @ v).transpose(1, 0, 2).reshape(length, d) @ self.w_out


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)


def ancestor_matrix(tree_parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """A[i, k] = True when node k is node i or one of its ancestors.

    Nodes are in topological order, so row i is row parent(i) plus i itself: one pass suffices.
    """
    n = len(tree_parents)
    anc = np.eye(n, dtype=bool)
    for i, parent in enumerate(tree_parents):
        if parent >= 0:
            anc[i] |= anc[parent]
    return anc


def build_tree_mask(prompt_len: int, tree_parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """Boolean mask (P+N, P+N), True where position i may attend to position j.

    Prompt rows are causal; every tree row sees the whole prompt, itself and its ancestors, and nothing of the
    other branches (siblings, cousins, their descendants).
    """
    p, n = prompt_len, len(tree_parents)
    mask = np.zeros((p + n, p + n), dtype=bool)
    mask[:p, :p] = np.tril(np.ones((p, p), dtype=bool))
    mask[p:, :p] = True
    mask[p:, p:] = ancestor_matrix(tree_parents)
    return mask


def additive_mask(mask: np.ndarray) -> np.ndarray:
    """The same mask in additive form: 0 where allowed, -inf where blocked (added to scores before softmax)."""
    return np.where(mask, 0.0, -np.inf)


def verify_and_accept(
    prompt_tokens: Sequence[int],
    tree_tokens: Sequence[int],
    tree_parents: Sequence[int],
    target_model: MinimalLM,
    temperature: float = 0.0,
) -> tuple[list[int], int]:
    """Verify a draft tree with one target forward pass; return (accepted_tokens, new_token).

    Greedy (temperature 0) only: that is the mode whose result is fully determined, and the one the golden
    property is stated for.
    """
    if temperature != 0:
        raise NotImplementedError("only greedy verification (temperature=0) is implemented")
    prompt = [int(t) for t in prompt_tokens]
    tokens = np.asarray(tree_tokens, dtype=np.int64)
    parents = np.asarray(tree_parents, dtype=np.int64)
    p = len(prompt)

    anc = ancestor_matrix(parents)
    depth = anc.sum(axis=1)  # number of ancestors including itself: roots have depth 1
    positions = np.concatenate([np.arange(p), p - 1 + depth])
    logits = target_model.forward(prompt + tokens.tolist(), build_tree_mask(p, parents), positions)
    prediction = logits.argmax(axis=-1)  # prediction[j]: the target's greedy token after position j

    # Node i is checked against the prediction made at its parent's position (P-1 for roots), never at P+i.
    parent_position = np.where(parents < 0, p - 1, p + parents)
    matches = tokens == prediction[parent_position]
    return _accepted_path(tokens, anc, depth, matches, prediction[p:], prediction[p - 1])


def _accepted_path(
    tokens: np.ndarray,
    anc: np.ndarray,
    depth: np.ndarray,
    matches: np.ndarray,
    tree_prediction: np.ndarray,
    prompt_prediction: int,
) -> tuple[list[int], int]:
    """The deepest node whose whole ancestor chain matches, its path's tokens, and the token after it."""
    # A rejected node invalidates its whole subtree: a node counts only if no node on its chain failed.
    accepted = ~(anc & ~matches[None, :]).any(axis=1)
    if not accepted.any():
        return [], int(prompt_prediction)  # every root rejected: the target's own next token
    best = int(np.argmax(np.where(accepted, depth, 0)))  # deepest; equal depths carry equal tokens
    path = np.flatnonzero(anc[best])  # its ancestors in index order: root first, as topological order runs
    return tokens[path].tolist(), int(tree_prediction[best])


def speculative_generate(
    prompt: Sequence[int], target_model: MinimalLM, draft_model: Draft, max_tokens: int
) -> list[int]:
    """The prompt's generation loop: draft a tree, verify it, append; until len(sequence) >= max_tokens.

    Every cycle appends at least the target's own next token, so no separate fallback pass is needed.
    """
    generated = [int(t) for t in prompt]
    while len(generated) < max_tokens:
        tree_tokens, tree_parents = draft_model(generated)
        accepted, new_token = verify_and_accept(generated, tree_tokens, tree_parents, target_model, 0.0)
        generated += [*accepted, new_token]
    return generated


def greedy_generate(prompt: Sequence[int], target_model: MinimalLM, n_new: int) -> list[int]:
    """Plain autoregressive greedy decoding: the sequence speculative decoding must reproduce exactly."""
    seq = [int(t) for t in prompt]
    for _ in range(n_new):
        seq.append(int(np.argmax(target_model.forward(seq)[-1])))
    return seq


# --------------------------------------------------------------------------------------------------------
# The prompt's three tests. Drafts are mocked from the target's own greedy continuation, with errors put in
# on purpose, because the interesting cases are the rejections.


def _next_token(model: MinimalLM, seq: Sequence[int]) -> int:
    return int(np.argmax(model.forward(list(seq))[-1]))


def _wrong(token: int, vocab: int, avoid: Sequence[int] = ()) -> int:
    """A token different from ``token`` and from everything in ``avoid``."""
    candidate = (token + 1) % vocab
    while candidate == token or candidate in avoid:
        candidate = (candidate + 1) % vocab
    return candidate


def test_basic_roots(model: MinimalLM) -> None:
    """Test 1: prompt [10, 20, 30], three roots and no depth 2; the correct root in each slot, or none."""
    prompt = [10, 20, 30]
    g = greedy_generate(prompt, model, 2)[len(prompt) :]
    wrong_a, wrong_b = _wrong(g[0], model.vocab_size), _wrong(g[0], model.vocab_size, [g[0] + 1])
    for roots in ([g[0], wrong_a, wrong_b], [wrong_a, g[0], wrong_b], [wrong_a, wrong_b, g[0]]):
        accepted, new = verify_and_accept(prompt, roots, [-1, -1, -1], model, 0.0)
        assert [*accepted, new] == g, (roots, accepted, new, g)
    accepted, new = verify_and_accept(prompt, [wrong_a, wrong_b, wrong_b + 1], [-1, -1, -1], model, 0.0)
    assert (accepted, new) == ([], g[0])


def test_subtree_invalidation(model: MinimalLM) -> None:
    """Test 2: a wrong depth-1 node whose children are exactly what the target predicts *after it*.

    Checked one by one, those children would match; they must be skipped because their parent was rejected.
    """
    prompt = [10, 20, 30]
    g = greedy_generate(prompt, model, 2)[len(prompt) :]
    wrong_root = _wrong(g[0], model.vocab_size)
    child = _next_token(model, [*prompt, wrong_root])
    grandchild = _next_token(model, [*prompt, wrong_root, child])
    tree_tokens, tree_parents = [wrong_root, child, grandchild], [-1, 0, 1]
    mask = build_tree_mask(len(prompt), tree_parents)
    logits = model.forward(prompt + tree_tokens, mask, np.array([0, 1, 2, 3, 4, 5]))
    assert logits[3].argmax() == child and logits[4].argmax() == grandchild  # they would match alone
    accepted, new = verify_and_accept(prompt, tree_tokens, tree_parents, model, 0.0)
    assert (accepted, new) == ([], g[0]), (accepted, new, g)


def test_multi_step(model: MinimalLM) -> None:
    """Test 3: three cycles, each cycle's output the next cycle's prompt; the sequence equals greedy decoding."""
    prompt = [10, 20, 30]
    reference = greedy_generate(prompt, model, 40)

    def draft(seq: list[int]) -> tuple[list[int], list[int]]:
        # Root 0 carries the depth-2 token (the right token at the wrong depth) and has a child; root 1 is
        # right, with two equal right children, one of them with a wrong child of its own.
        cont = reference[len(seq) : len(seq) + 3]
        bad = _wrong(cont[2], model.vocab_size, cont)
        tokens = [cont[1], cont[0], bad, cont[1], cont[1], _wrong(cont[2], model.vocab_size, [*cont, bad])]
        return tokens, [-1, -1, 0, 1, 1, 4]

    seq = list(prompt)
    for _ in range(3):
        tree_tokens, tree_parents = draft(seq)
        accepted, new = verify_and_accept(seq, tree_tokens, tree_parents, model, 0.0)
        seq += [*accepted, new]
    assert seq == reference[: len(seq)], (seq, reference[: len(seq)])
    assert len(seq) == len(prompt) + 9  # three cycles, each accepting two drafted tokens plus the correction
    assert speculative_generate(prompt, model, draft, 30) == reference[:30]


if __name__ == "__main__":
    lm = MinimalLM()
    mask = build_tree_mask(2, [-1, -1, 0, 2])
    assert mask.tolist()[2:] == [
        [True, True, True, False, False, False],
        [True, True, False, True, False, False],
        [True, True, True, False, True, False],
        [True, True, True, False, True, True],
    ]
    test_basic_roots(lm)
    test_subtree_invalidation(lm)
    test_multi_step(lm)
    print("all three tests passed: speculative decoding reproduces greedy decoding exactly")
