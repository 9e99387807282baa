"""Oracles for tree-attention verification (dflash_verify): the tree mask, the greedy-equivalent result of one
verification cycle, and draft trees built from the target's true greedy continuation.

Acceptance is defined here without any tree mask, straight from the golden property: with G the target's
autoregressive greedy continuation of the prompt, a node at depth d is accepted exactly when its token is
G[d-1] and its parent is accepted (roots have no parent to wait for). The cycle keeps the deepest accepted
node's path and then the target's next token G[len(path)]: the correction where the walk stopped at a
mismatch, or a bonus where it ran off a leaf. The prompt is explicit about the correction ("take
target_greedy_prediction instead") but silent on the bonus, so after a path that ends at a leaf both
``path`` and ``path + [bonus]`` are accepted.

How much a cycle must accept is the prompt's own accept loop (:func:`prompt_loop_floor`), which STOPs at the
first rejection; keeping the longest matching path is better (more tokens per target pass) but not asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def ancestors(parents: Sequence[int], node: int) -> list[int]:
    """The ancestors of ``node``, root first, found by following parent pointers."""
    chain = []
    parent = parents[node]
    while parent >= 0:
        chain.append(parent)
        parent = parents[parent]
    return chain[::-1]


def depths(parents: Sequence[int]) -> list[int]:
    """Depth of every node; roots (children of the last prompt token) have depth 1."""
    return [len(ancestors(parents, i)) + 1 for i in range(len(parents))]


def children(parents: Sequence[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for i, parent in enumerate(parents):
        if parent >= 0:
            kids[parent].append(i)
    return kids


def tree_mask(prompt_len: int, parents: Sequence[int]) -> np.ndarray:
    """The prompt's rules a) to e), entry by entry: True where position i may attend to position j."""
    p, n = prompt_len, len(parents)
    mask = np.zeros((p + n, p + n), dtype=bool)
    for i in range(p):
        mask[i, : i + 1] = True  # a) causal prompt
    for i in range(n):
        mask[p + i, :p] = True  # b) the whole prompt
        mask[p + i, p + i] = True  # c) itself
        for k in ancestors(parents, i):
            mask[p + i, p + k] = True  # d) its ancestors; e) nothing else
    return mask


@dataclass(frozen=True)
class CycleAnswer:
    """Greedy verification of one tree: the longest accepted path (the most a cycle can keep) and the greedy
    continuation that everything a cycle appends must follow."""

    path_tokens: list[int]  # drafted tokens of the deepest accepted path, root first
    next_token: int  # the target's greedy token after that path
    leaf_ok: bool  # some deepest accepted node is a leaf: the bonus token is optional
    greedy: list[int]  # the target's greedy continuation, long enough for any legitimate output


def cycle_answer(greedy_continuation: Sequence[int], tokens: Sequence[int], parents: Sequence[int]) -> CycleAnswer:
    """The right result of verifying one tree, given the target's greedy continuation of the prompt.

    ``greedy_continuation`` must hold at least max depth + 1 tokens.
    """
    g = [int(t) for t in greedy_continuation]
    depth = depths(parents)
    if len(g) < max(depth, default=0) + 1:
        raise ValueError("greedy continuation shorter than the tree's depth + 1")
    accepted = [False] * len(tokens)
    for i in range(len(tokens)):  # topological order: a parent is decided before its children
        parent_ok = parents[i] < 0 or accepted[parents[i]]
        accepted[i] = parent_ok and int(tokens[i]) == g[depth[i] - 1]
    best = max((depth[i] for i in range(len(tokens)) if accepted[i]), default=0)
    kids = children(parents)
    leaf_ok = any(accepted[i] and depth[i] == best and not kids[i] for i in range(len(tokens)))
    return CycleAnswer(g[:best], g[best], leaf_ok, g[: max(depth, default=0) + 1])


def prompt_loop_floor(
    greedy_continuation: Sequence[int], tokens: Sequence[int], parents: Sequence[int]
) -> tuple[list[int], bool]:
    """What the prompt's step-4 loop accepts, read so that it stays greedy-consistent: (path, correction).

    Nodes in index order; a node below a rejected node is skipped (4a); a node is checked against the
    target's prediction after its parent. A match that extends the path built so far (a root while it is
    empty, else a child of its last node) is appended; any mismatch STOPs the cycle. ``correction`` is True
    when the stop came from a candidate for the next token, whose replacement the prompt then requires
    (4d); a mismatch elsewhere (a sibling of an accepted node) stops without one, since "its" replacement
    would repeat a token. A match off the path (a duplicate of an accepted node) adds nothing. This is the
    least a verifier that follows the prompt accepts, whichever of these readings it takes.
    """
    g = [int(t) for t in greedy_continuation]
    depth = depths(parents)
    rejected = [False] * len(tokens)
    path: list[int] = []
    end = -1
    for i, parent in enumerate(parents):
        if parent >= 0 and rejected[parent]:
            rejected[i] = True
            continue
        if int(tokens[i]) != g[depth[i] - 1]:
            return path, parent == end
        if parent == end:
            path.append(int(tokens[i]))
            end = i
    return path, False


def judge_cycle(answer: CycleAnswer, appended: Sequence[int], floor: int = 1) -> str | None:
    """None when ``appended`` is right, else why not.

    The golden property: the cycle appends at least one token and everything it appends is the target's own
    greedy continuation; and at least ``floor`` tokens (what the prompt's loop accepts, when that is graded).
    """
    got = [int(t) for t in appended]
    if not got:
        return "the cycle appended no token (a rejection must still emit the target's prediction)"
    if got != answer.greedy[: len(got)]:
        pairs = zip(got, answer.greedy, strict=False)
        first = next((k for k, (a, b) in enumerate(pairs) if a != b), len(answer.greedy))
        repeated = first < len(got) and got[first] in got[:first]
        return (
            f"appended {got}, but greedy decoding continues {answer.greedy[: len(got)]} "
            f"(first difference at token {first}"
            + (f": token {got[first]} emitted twice, a duplicated token)" if repeated else ")")
        )
    if len(got) < floor:
        return (
            f"appended {got}: greedy-consistent, but the prompt's accept loop keeps "
            f"{answer.greedy[:floor]} ({floor} tokens) from this tree"
        )
    return None


# -- draft trees ------------------------------------------------------------------------------------------


def random_topological_order(parents: Sequence[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Renumber a tree in a random topological order (a parent always before its children).

    Returns (order, new_parents): ``order[new_index] = old_index``.
    """
    kids = children(parents)
    ready = [i for i, p in enumerate(parents) if p < 0]
    order: list[int] = []
    while ready:
        pick = ready.pop(int(rng.integers(len(ready))))
        order.append(pick)
        ready.extend(kids[pick])
    new_index = {old: new for new, old in enumerate(order)}
    return order, [new_index[parents[old]] if parents[old] >= 0 else -1 for old in order]


def _other(rng: np.random.Generator, vocab: int, avoid: Sequence[int]) -> int:
    while True:
        t = int(rng.integers(vocab))
        if t not in avoid:
            return t


def draft_tree(
    rng: np.random.Generator,
    greedy_continuation: Sequence[int],
    n_nodes: int,
    max_depth: int,
    vocab: int = 1000,
    p_right: float = 0.6,
) -> tuple[list[int], list[int]]:
    """A random draft tree built from the true greedy continuation g, with errors of every kind.

    A spine of right tokens (random length), then nodes hung under random nodes or as roots. A node whose
    parent is on the right path gets the right token g[d-1] with probability ``p_right`` (a second right
    sibling is a duplicate that must not be emitted twice), else the right token at the wrong depth (g[d] or
    g[d-2]) or a random one. Below a wrong node tokens are random or "correct-looking" g[d-1], which must
    still be rejected. The nodes come out in a random topological order.
    """
    g = [int(t) for t in greedy_continuation]
    parents: list[int] = []
    tokens: list[int] = []
    depth: list[int] = []
    right: list[bool] = []

    def add(parent: int, token: int, is_right: bool) -> None:
        parents.append(parent)
        tokens.append(token)
        depth.append(1 if parent < 0 else depth[parent] + 1)
        right.append(is_right)

    spine = int(rng.integers(0, max_depth + 1))
    for d in range(spine):
        add(d - 1, g[d], True)
    while len(parents) < n_nodes:
        open_nodes = [i for i in range(len(parents)) if depth[i] < max_depth]
        parent = -1 if not open_nodes or rng.random() < 0.25 else int(rng.choice(open_nodes))
        d = 1 if parent < 0 else depth[parent] + 1
        expected = g[d - 1]
        if parent < 0 or right[parent]:
            r = rng.random()
            if r < p_right:
                add(parent, expected, True)
                continue
            wrong_depth = [t for t in (g[d], g[d - 2] if d >= 2 else None) if t is not None and t != expected]
            if r < p_right + 0.2 and wrong_depth:
                add(parent, int(rng.choice(wrong_depth)), False)
            else:
                add(parent, _other(rng, vocab, [expected]), False)
        elif rng.random() < 0.5:
            add(parent, expected, False)  # correct-looking under a wrong ancestor
        else:
            add(parent, _other(rng, vocab, []), False)
    order, new_parents = random_topological_order(parents, rng)
    return [tokens[i] for i in order], new_parents


def distinct_greedy_prompt(
    rng: np.random.Generator, greedy: object, length: int, n_check: int, tries: int = 200
) -> tuple[list[int], list[int]]:
    """A random prompt whose greedy continuation's first ``n_check`` tokens are pairwise distinct and new.

    With repeated tokens several wrong verifiers (a duplicated token, a prediction one position off) would
    produce the right output by coincidence; distinct tokens make every such slip visible.
    ``greedy(prompt, n)`` returns the generated tokens. Returns (prompt, continuation).
    """
    for _ in range(tries):
        prompt = [int(t) for t in rng.integers(0, 1000, size=length)]
        cont = greedy(prompt, n_check)  # type: ignore[operator]
        if len(set(cont)) == len(cont) and not set(cont) & set(prompt):
            return prompt, cont
    raise RuntimeError("no prompt with a distinct greedy continuation found")
