"""A byte-level BPE tokenizer trained offline on the training split: nothing to download, no unknown tokens.

Ids 0..255 are the raw bytes; each merge adds one id. Text is first split GPT-2 style into words with their
leading space, and merges never cross a word boundary. Qwen3's own 151,936-token vocabulary would leave
most rows of the embedding and LM head untrained on 250 KB of text, so a vocabulary sized to the data is used.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict

_WORDS = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def _pretokenize(text: str) -> list[bytes]:
    return [w.encode("utf-8") for w in _WORDS.findall(text)]


class ByteBPE:
    def __init__(self, merges: list[tuple[int, int]] | None = None) -> None:
        self.merges: list[tuple[int, int]] = [tuple(m) for m in (merges or [])]
        self.ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        self.token_bytes = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> ByteBPE:
        """Greedy BPE: repeatedly merge the most frequent adjacent pair, counts updated incrementally."""
        word_counts = Counter(_pretokenize(text))
        words = [list(w) for w in word_counts]
        freqs = list(word_counts.values())
        pair_counts: Counter = Counter()
        where: defaultdict = defaultdict(set)
        for i, w in enumerate(words):
            for pair in itertools.pairwise(w):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
        merges: list[tuple[int, int]] = []
        for new_id in range(256, vocab_size):
            if not pair_counts:
                break
            best = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))
            if pair_counts[best] < 2:
                break
            merges.append(best)
            for i in list(where[best]):
                w, f = words[i], freqs[i]
                for pair in itertools.pairwise(w):
                    pair_counts[pair] -= f
                    if pair_counts[pair] <= 0:
                        del pair_counts[pair]
                merged, j = [], 0
                while j < len(w):
                    if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                        merged.append(new_id)
                        j += 2
                    else:
                        merged.append(w[j])
                        j += 1
                words[i] = merged
                for pair in itertools.pairwise(merged):
                    pair_counts[pair] += f
                    where[pair].add(i)
            del where[best]
        return cls(merges)

    def _encode_word(self, word: bytes) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids = list(word)
        while len(ids) > 1:
            ranked = [(self.ranks.get(p, 1 << 30), k) for k, p in enumerate(itertools.pairwise(ids))]
            rank, k = min(ranked)
            if rank == 1 << 30:
                break
            ids[k : k + 2] = [rank]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for word in _pretokenize(text):
            out.extend(self._encode_word(word))
        return out

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def byte_length(self, ids) -> int:
        return sum(len(self.token_bytes[int(i)]) for i in ids)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"type": "byte-level BPE", "merges": self.merges}, fh)

    @classmethod
    def load(cls, path: str) -> ByteBPE:
        with open(path, encoding="utf-8") as fh:
            return cls([tuple(m) for m in json.load(fh)["merges"]])
