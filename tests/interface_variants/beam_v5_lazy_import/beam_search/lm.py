import numpy as np


class SmallLM:
    def __init__(self, vocab_size=1000):
        self.w = np.random.default_rng(0).standard_normal((vocab_size, vocab_size))

    def logits(self, sequences, lengths):
        return np.stack([self.w[s[n - 1]] for s, n in zip(sequences, lengths)])
