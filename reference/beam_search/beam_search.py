"""Batched beam search with a length penalty and EOS retention, in NumPy.

State of the search, for B batch items with K beam slots each (arrays of shape (B, K)):
    acc       raw accumulated log-probability of the generated tokens (EOS included), never rescaled;
              -inf marks an empty slot (at the start only slot 0 holds the empty beam)
    length    number of generated tokens (EOS included; prompt tokens never count)
    finished  the beam has produced EOS: acc and length are frozen from then on
    tokens    (B, K, max_new_tokens): the generated tokens of each slot, valid up to length

One step, for every batch item at once:
  1. every live (unfinished, non-empty) beam is extended by its top-2K next tokens (top-K alone could fill
     all K slots from one dominant beam and lose the diversity beam search is for);
  2. the selection pool of an item is its FINISHED beams, unchanged, plus all those candidates;
  3. the K best of the pool by length-penalised score acc / length**alpha become the item's new slots.

Why finished beams stay in the pool: a beam that emits EOS early is short and often confident, e.g. total
log-prob -3.0 after one token. If it left the pool, its slot would go to a continuing beam that may end far
worse (-5.0 one step later), and the best answer would be lost for good. Competing in the pool, it holds its
slot as long as it beats the candidates; once the K best of an item are all finished, that item stops
expanding. The penalty only ranks: acc stays the raw sum of log-probabilities, so a finished beam's score
is always computed from the same frozen acc and length and cannot drift from step to step.

Everything stays in log space: products of probabilities underflow to 0 after a few hundred tokens (or at
once for a token of probability e**-1000), sums of log-probabilities do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def layer_norm(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)


class MinimalLM:
    """Random embeddings, one pre-norm transformer block (causal multi-head attention + MLP), an LM head.

    Its quality is irrelevant; what matters is that it is a deterministic function of the token sequence.
    """

    def __init__(self, vocab_size: int = 1000, d_model: int = 64, n_heads: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        d = d_model
        self.vocab_size, self.d_model, self.n_heads = vocab_size, d_model, n_heads
        self.embed = rng.standard_normal((vocab_size, d))
        self.pos = rng.standard_normal((4096, d)) * 0.1
        self.w_qkv = rng.standard_normal((d, 3 * d)) / np.sqrt(d)
        self.w_o = rng.standard_normal((d, d)) / np.sqrt(d)
        self.w_up = rng.standard_normal((d, 4 * d)) / np.sqrt(d)
        self.w_down = rng.standard_normal((4 * d, d)) / np.sqrt(4 * d)
        self.w_head = rng.standard_normal((d, vocab_size)) * (3.0 / np.sqrt(d))

    def block(self, x: np.ndarray, query_pos: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """The transformer block at the positions ``query_pos`` (n, Q) of the inputs x (n, L, d), each query
        attending to the keys where ``visible`` (n, Q, L) is True; returns the final hidden states (n, Q, d).

        Only the queried positions go through attention's output, the MLP and the final norm: with a single
        block, the other positions are needed only as keys and values.
        """
        n, length, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        x_q = np.take_along_axis(x, query_pos[:, :, None], axis=1)
        q = (layer_norm(x_q) @ self.w_qkv[:, :d]).reshape(n, -1, h, dh).transpose(0, 2, 1, 3)
        k, v = np.split(layer_norm(x) @ self.w_qkv[:, d:], 2, axis=-1)
        k, v = (t.reshape(n, length, h, dh).transpose(0, 2, 1, 3) for t in (k, v))
        scores = np.where(visible[:, None], q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh), -np.inf)
        attn = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn /= attn.sum(axis=-1, keepdims=True)
        x_q = x_q + (attn @ v).transpose(0, 2, 1, 3).reshape(n, -1, d) @ self.w_o
        x_q = x_q + np.maximum(layer_norm(x_q) @ self.w_up, 0.0) @ self.w_down
        return layer_norm(x_q)

    def embed_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return self.embed[tokens] + self.pos[: tokens.shape[1]]

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        """(n, L) token ids -> (n, L, V) logits at every position, under the causal mask."""
        tokens = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
        n, length = tokens.shape
        pos = np.broadcast_to(np.arange(length), (n, length))
        causal = np.broadcast_to(np.tril(np.ones((length, length), dtype=bool)), (n, length, length))
        return self.block(self.embed_tokens(tokens), pos, causal) @ self.w_head

    def next_token_log_probs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-probabilities of the next token after each of n sequences of any lengths: (n, V).

        The sequences are right-padded into one batch and only each row's last real position is queried;
        it sees the keys up to itself, never the padding, so it equals forward(sequence)[-1] exactly.
        """
        lengths = np.array([len(s) for s in sequences])
        batch = np.zeros((len(sequences), lengths.max()), dtype=np.int64)
        for i, s in enumerate(sequences):
            batch[i, : len(s)] = s
        visible = (np.arange(batch.shape[1]) < lengths[:, None])[:, None, :]
        last = self.block(self.embed_tokens(batch), (lengths - 1)[:, None], visible)[:, 0]
        return log_softmax(last @ self.w_head)


class NextTokenModel(Protocol):
    """What the search needs from a model: next-token log-probs for a batch of sequences of any lengths."""

    def next_token_log_probs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray: ...


_default_model: MinimalLM | None = None


def default_model() -> MinimalLM:
    global _default_model
    if _default_model is None:
        _default_model = MinimalLM()
    return _default_model


def penalised(acc: np.ndarray, length: np.ndarray, alpha: float) -> np.ndarray:
    """The ranking score acc / length**alpha (empty slots, acc = -inf, stay -inf)."""
    return acc / np.maximum(length, 1) ** alpha


def batched_beam_search(
    prompts: Sequence[Sequence[int]],
    beam_width: int,
    max_new_tokens: int,
    alpha: float = 0.6,
    eos_token_id: int = 0,
    model: NextTokenModel | None = None,
) -> list[list[tuple[list[int], float]]]:
    """The K best continuations of each prompt: per item a list of (generated tokens, score), best first.

    score = accumulated log-prob / len(tokens)**alpha, where tokens are the generated ones (EOS included).
    Fewer than K come back only when the vocabulary cannot fill K slots.
    """
    model = model if model is not None else default_model()
    prompts = [[int(t) for t in p] for p in prompts]
    B, K, T = len(prompts), beam_width, max_new_tokens
    acc = np.full((B, K), -np.inf)
    acc[:, 0] = 0.0  # one empty beam per item; the other slots are empty until the first step fills them
    length = np.zeros((B, K), dtype=np.int64)
    finished = np.zeros((B, K), dtype=bool)
    tokens = np.zeros((B, K, T), dtype=np.int64)
    rows = np.arange(B)[:, None]

    for step in range(T):
        live = np.isfinite(acc) & ~finished
        if not live.any():
            break  # every item's K best are finished: nothing left to expand
        b_live, k_live = np.nonzero(live)
        log_p = model.next_token_log_probs(
            [prompts[b] + tokens[b, k, :step].tolist() for b, k in zip(b_live, k_live, strict=True)]
        )
        C = min(2 * K, log_p.shape[1])
        top = np.argpartition(-log_p, C - 1, axis=1)[:, :C]  # top-2K per beam (any order)

        cand_acc = np.full((B, K, C), -np.inf)  # slots that are not live contribute no candidates
        cand_acc[b_live, k_live] = acc[b_live, k_live, None] + np.take_along_axis(log_p, top, axis=1)
        cand_tok = np.zeros((B, K, C), dtype=np.int64)
        cand_tok[b_live, k_live] = top

        # The pool: K entries for the finished beams as they are, then K*C candidates. Finished beams are
        # never dropped here: they keep competing for the K slots with their frozen penalised scores, and a
        # slot a finished beam keeps is one fewer beam to expand (see the module docstring).
        pool_acc = np.concatenate([np.where(finished, acc, -np.inf), cand_acc.reshape(B, K * C)], axis=1)
        pool_len = np.concatenate([length, np.repeat(length + 1, C, axis=1)], axis=1)
        pool_fin = np.concatenate([finished, cand_tok.reshape(B, K * C) == eos_token_id], axis=1)
        pool_tok = np.concatenate([np.full((B, K), -1), cand_tok.reshape(B, K * C)], axis=1)
        pool_parent = np.concatenate([np.arange(K), np.repeat(np.arange(K), C)])

        best = np.argsort(-penalised(pool_acc, pool_len, alpha), axis=1, kind="stable")[:, :K]
        parent = pool_parent[best]
        new_tok = pool_tok[rows, best]
        tokens = tokens[rows, parent]
        extended = new_tok >= 0
        tokens[extended, step] = new_tok[extended]
        acc, length, finished = pool_acc[rows, best], pool_len[rows, best], pool_fin[rows, best]

    # The slots are already in selection order, i.e. sorted by penalised score; drop the empty ones.
    score = penalised(acc, length, alpha)
    return [
        [(tokens[b, k, : length[b, k]].tolist(), float(score[b, k])) for k in range(K) if np.isfinite(acc[b, k])]
        for b in range(B)
    ]


# ---------------------------------------------------------------------------------------------------------
# The prompt's three tests.


def greedy_decode(model: MinimalLM, prompt: list[int], n_new: int, eos_token_id: int) -> tuple[list[int], float]:
    seq, total = list(prompt), 0.0
    for _ in range(n_new):
        log_p = model.next_token_log_probs([seq])[0]
        token = int(np.argmax(log_p))
        seq.append(token)
        total += float(log_p[token])
        if token == eos_token_id:
            break
    return seq[len(prompt) :], total


class ScriptedEOSModel:
    """The "monkey-patched" model of Test 3: next-token log-probs prescribed per generated suffix.

    From the prompt: EOS (total -3.0) or token 7 (-4.0). After [7]: token 8 (step total -5.0). After [7, 8]:
    EOS. The remaining probability mass is spread evenly over the other tokens, so rows stay normalised.
    """

    script: ClassVar[dict] = {(): {0: -3.0, 7: -4.0}, (7,): {8: -1.0}, (7, 8): {0: -0.01}}

    def __init__(self, prompt_length: int, vocab_size: int = 1000) -> None:
        self.prompt_length, self.vocab_size = prompt_length, vocab_size

    def next_token_log_probs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        out = []
        for s in sequences:
            given = self.script.get(tuple(s[self.prompt_length :]), {})
            rest = np.log1p(-sum(np.exp(v) for v in given.values())) - np.log(self.vocab_size - len(given))
            row = np.full(self.vocab_size, rest)
            for t, v in given.items():
                row[t] = v
            out.append(row)
        return np.array(out)


if __name__ == "__main__":
    model = default_model()
    eos = 999

    # The batched next-token call equals the full forward pass at each sequence's last position.
    seqs = [[3, 1, 4, 1, 5], [9, 2, 6]]
    full = [log_softmax(model.forward(np.array([s]))[0, -1]) for s in seqs]
    assert np.allclose(model.next_token_log_probs(seqs), full, rtol=0, atol=1e-12)

    # Test 1: K=1 and alpha=0 is greedy decoding (tokens and total log-prob).
    prompt = [5, 17, 42]
    [[(beam_tokens, beam_score)]] = batched_beam_search([prompt], 1, 12, alpha=0.0, eos_token_id=eos)
    greedy_tokens, greedy_total = greedy_decode(model, prompt, 12, eos)
    assert beam_tokens == greedy_tokens and abs(beam_score - greedy_total) < 1e-9, (beam_tokens, greedy_tokens)
    print("Test 1 (K=1, alpha=0 == greedy):", beam_tokens, f"{beam_score:.4f}")

    # Test 2: two prompts of lengths 3 and 5, K=3: batched results equal each prompt searched alone.
    prompts = [[11, 12, 13], [21, 22, 23, 24, 25]]
    batched = batched_beam_search(prompts, 3, 10, alpha=0.6, eos_token_id=eos)
    for p, got in zip(prompts, batched, strict=True):
        [alone] = batched_beam_search([p], 3, 10, alpha=0.6, eos_token_id=eos)
        assert [t for t, _ in got] == [t for t, _ in alone]
        assert np.allclose([s for _, s in got], [s for _, s in alone], rtol=0, atol=1e-9)
    print("Test 2 (batch independence): ok")

    # Test 3: the EOS beam at -3.0 (step 1) beats the continuing beam at -5.0 (step 2).
    [best, *others] = batched_beam_search([[1, 2, 3]], 2, 4, alpha=0.0, eos_token_id=0, model=ScriptedEOSModel(3))[0]
    assert best[0] == [0] and abs(best[1] + 3.0) < 1e-12, best
    print("Test 3 (EOS retention): winner", best, "runner-up", others[0])
