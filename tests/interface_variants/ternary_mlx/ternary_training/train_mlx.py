"""Byte-level training run of the MLX variant: python train_mlx.py [steps]; writes results.json."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from bitnet import GROUP_SIZE, dequantized, ternary_quantize
from mlx.utils import tree_flatten
from qwen3_ternary import Model, ModelArgs, get_batch, loss_fn, split_text


def main(steps: int = 300) -> None:
    here = Path(__file__).resolve().parent
    data_path = next(p / "train_data.txt" for p in (here, *here.parents) if (p / "train_data.txt").exists())
    train_text, val_text = split_text(data_path.read_text(encoding="utf-8"))
    train = np.frombuffer(train_text.encode(), dtype=np.uint8).astype(np.int64)
    val = np.frombuffer(val_text.encode(), dtype=np.uint8).astype(np.int64)
    mx.random.seed(0)
    args = ModelArgs(vocab_size=256, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=384, head_dim=32)  # fmt: skip
    model = Model(args)
    opt = optim.AdamW(learning_rate=optim.cosine_decay(2e-3, steps, 2e-4), weight_decay=0.1)
    step_fn = nn.value_and_grad(model, loss_fn)
    rng = np.random.default_rng(0)
    log, start = [], time.perf_counter()
    for step in range(steps):
        x, y = get_batch(train, 16, 128, rng)
        loss, grads = step_fn(model, x, y)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        if (step + 1) % 25 == 0:
            log.append({"step": step + 1, "loss": loss.item()})
    n = (len(val) - 1) // 128
    xs, ys = val[: n * 128].reshape(n, 128), val[1 : n * 128 + 1].reshape(n, 128)
    nll = sum(loss_fn(model, mx.array(xs[i : i + 32]), mx.array(ys[i : i + 32])).item() * len(xs[i : i + 32])
              for i in range(0, n, 32)) / n  # fmt: skip
    worst = 0.0
    for _name, w in tree_flatten(model.parameters()):
        if w.ndim == 2:
            codes, scales = ternary_quantize(w)
            wq = np.array(dequantized(w))
            s = np.repeat(np.array(scales), GROUP_SIZE, axis=1)[:, : w.shape[1]]
            ratio = np.divide(wq, s, out=np.zeros_like(wq), where=s > 0)
            worst = max(worst, float(np.abs(ratio - np.array(codes)).max()))
    samples = []
    for prompt in ("The river ", "Mountains are ", "In the early "):
        ids = list(prompt.encode())
        for _ in range(80):
            logits = model(mx.array([ids[-128:]]))[0, -1]
            ids.append(int(mx.random.categorical(logits / 0.8).item()))
        samples.append(bytes(ids).decode("utf-8", errors="replace"))
    report = {"final_train_loss": log[-1]["loss"], "validation_perplexity_per_byte": math.exp(nll),
              "validation_bits_per_byte": nll / math.log(2), "ternary_verification": {"all_ternary": worst < 1e-5,
              "max_deviation": worst}, "samples": samples, "loss_log": log, "steps": steps,
              "wall_time_s": time.perf_counter() - start}  # fmt: skip
    (here / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("loss_log",)}, indent=2))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
