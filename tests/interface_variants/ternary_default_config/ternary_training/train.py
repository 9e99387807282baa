"""Train the ternary Qwen3-style model from scratch on train_data.txt and write report.json / REPORT.md.

python train.py                  # the full run (about 6 minutes on 2 idle CPU cores)
python train.py --steps 40       # a shortened run; TERNARY_STEPS=40 does the same
python train.py --preset prompt  # the prompt's path-B size (d_model 512); see README.md for why it is not the default
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import data
import model as model_lib
import numpy as np
import ternary
from tokenizer import ByteBPE

HERE = Path(__file__).resolve().parent

PRESETS = {
    # d_model 256, 6 layers: what 15 CPU minutes can train on 250 KB (README.md, "Size")
    "default": dict(
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=768,
    ),
    # the prompt's path B: 6 layers, d_model 512, 8 query / 4 key-value heads
    "prompt": dict(
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        intermediate_size=1536,
    ),
}


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), applied to the latent weights."""

    def __init__(self, params: dict[str, np.ndarray], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1) -> None:
        self.params = params
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0
        # decay the ternary matrices only; RMSNorm gains are 1-D and stay undecayed
        self.decay = {k: p.ndim >= 2 for k, p in params.items()}

    def step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for k, p in self.params.items():
            g = grads[k]
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * (g * g)
            if self.decay[k]:
                p *= 1.0 - lr * self.weight_decay
            p -= (lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def lr_at(step: int, total: int, peak: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warmup to ``peak``, then cosine decay to ``floor * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def clip_gradients(grads: dict[str, np.ndarray], max_norm: float) -> float:
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def train_step(net: model_lib.ByteTernaryLM, opt: AdamW, batch: tuple[np.ndarray, np.ndarray], lr: float) -> float:
    """One optimisation step on a batch (inputs, next-token targets); returns the batch loss."""
    inputs, targets = batch
    loss = model_lib.loss_and_grad(net, inputs, targets)
    clip_gradients(net.gradients(), 1.0)
    opt.step(net.gradients(), lr)
    return loss


def evaluate(model: model_lib.ByteTernaryLM, tokens: np.ndarray, seq_len: int, tok: ByteBPE) -> dict:
    """Held-out loss per token, perplexity, and bits per byte (tokenizer-independent)."""
    xs, ys = data.eval_windows(tokens, seq_len)
    total_nll, n_tokens = 0.0, 0
    for i in range(0, len(xs), 16):
        nll = model_lib.token_nll(model, xs[i : i + 16], ys[i : i + 16])
        total_nll += float(nll.sum())
        n_tokens += nll.size
    n_bytes = tok.byte_length(ys.reshape(-1))
    loss = total_nll / n_tokens
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": total_nll / math.log(2) / n_bytes,
        "tokens": n_tokens,
        "bytes": n_bytes,
    }


def generate(
    model, tok: ByteBPE, prompt: str, n_tokens: int, rng: np.random.Generator, temperature: float = 0.8, top_k: int = 40
) -> str:
    ids = tok.encode(prompt)
    ctx = model.config.max_position_embeddings
    for _ in range(n_tokens):
        logits = model.forward(np.asarray([ids[-ctx:]]))[0, -1].astype(np.float64) / temperature
        cutoff = np.sort(logits)[-top_k]
        logits[logits < cutoff] = -np.inf
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(p.size, p=p / p.sum())))
    return tok.decode(ids)


def ternary_verification(model: model_lib.ByteTernaryLM) -> dict:
    """Every ternary layer's projected weights: W_q / s in {-1, 0, +1} within 1e-5, and s = mean|W| per group."""
    layers, worst, zeros, total, scale_err = [], 0.0, 0, 0, 0.0
    for name, mod in model.named_modules().items():
        if not isinstance(mod, (ternary.TernaryLinear, ternary.TernaryEmbedding)):
            continue
        codes, scales = ternary.ternarize(mod.weight, mod.group_size)
        wq = mod.projected_weight()
        worst = max(worst, ternary.verify_ternary(wq, mod.group_size))
        # the magnitude actually used in each group must be mean|W| of that group
        used = np.abs(wq).reshape(wq.shape[0], -1)
        n = wq.shape[-1]
        for g in range(scales.shape[-1]):
            block = used[:, g * mod.group_size : min(n, (g + 1) * mod.group_size)]
            mag = block.max(axis=-1)
            ok = mag > 0
            if ok.any():
                scale_err = max(scale_err, float(np.max(np.abs(mag[ok] - scales[ok, g]) / scales[ok, g])))
        zeros += int(np.sum(codes == 0))
        total += codes.size
        layers.append(name)
    floats = [n for n, m in model.named_modules().items() if isinstance(m, model_lib.RMSNorm)]
    return {
        "all_ternary": worst < 1e-5 and scale_err < 1e-5,
        "max_deviation": worst,
        "max_scale_relative_error": scale_err,
        "ternary_layers": len(layers),
        "ternary_weights": total,
        "fraction_zero": zeros / total,
        "group_size": ternary.GROUP_SIZE,
        "includes": ["embed_tokens", "q/k/v/o_proj", "gate/up/down_proj", "lm_head"],
        "float_parameters": sum(model.named_modules()[n].weight.size for n in floats),
        "float_layers": f"{len(floats)} RMSNorm gains",
    }


def find_data(path: str | None) -> Path:
    if path:
        return Path(path)
    for folder in (HERE, *HERE.parents):
        if (folder / "train_data.txt").exists():
            return folder / "train_data.txt"
    raise FileNotFoundError("train_data.txt not found next to train.py or in a parent folder")


def write_reports(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    v, t, c = report["validation"], report["ternary_verification"], report["config"]
    lines = [
        "# Ternary training report",
        "",
        f"Model: Qwen3-style, {c['num_hidden_layers']} layers, d_model {c['hidden_size']}, "
        f"{c['num_attention_heads']} query / {c['num_key_value_heads']} key-value heads, "
        f"SwiGLU {c['intermediate_size']}, vocab {c['vocab_size']} (byte-level BPE), "
        f"{report['parameters']:,} parameters, all matrices ternary (group size {t['group_size']}).",
        f"Training: {report['steps']} steps x batch {report['batch_size']} x {report['seq_len']} tokens, "
        f"AdamW peak lr {report['lr']}, warmup {report['warmup']}, wall time {report['wall_time_s']:.0f} s.",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| final training loss | {report['final_train_loss']:.4f} |",
        f"| validation loss | {v['loss']:.4f} |",
        f"| validation perplexity | {v['perplexity']:.2f} |",
        f"| validation bits per byte | {v['bits_per_byte']:.4f} |",
        f"| validation at step 0 (perplexity) | {report['initial_validation']['perplexity']:.1f} |",
        f"| ternary verification | {'PASS' if t['all_ternary'] else 'FAIL'}: max deviation {t['max_deviation']:.2g} "
        f"over {t['ternary_weights']:,} weights in {t['ternary_layers']} layers, "
        f"{100 * t['fraction_zero']:.1f}% zeros |",
        "",
        "## Samples",
        "",
    ]
    for s in report["samples"]:
        lines += [f"**Prompt:** {s['prompt']!r}", "", "> " + s["text"].replace("\n", " "), ""]
    lines += ["## Loss log", "", "| step | train loss | lr |", "| --- | --- | --- |"]
    lines += [f"| {e['step']} | {e['loss']:.4f} | {e['lr']:.2e} |" for e in report["loss_log"]]
    (out_dir / "REPORT.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=int(os.environ.get("TERNARY_STEPS", 1000)))
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--vocab-size", type=int, default=256)  # bytes: the model's own vocabulary
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=200)
    args = ap.parse_args(argv)
    start = time.perf_counter()

    text = find_data(args.data).read_text(encoding="utf-8")
    parts = data.holdout_split(text)
    train_text, val_text = parts["train"], parts["validation"]
    tok = ByteBPE.train(train_text, args.vocab_size)
    train_ids = np.asarray(tok.encode(train_text), dtype=np.int64)
    val_ids = np.asarray(tok.encode(val_text), dtype=np.int64)
    print(
        f"data: {len(text.encode()):,} bytes; train {len(train_text.encode()):,} bytes / {len(train_ids):,} tokens, "
        f"validation {len(val_text.encode()):,} bytes / {len(val_ids):,} tokens; vocab {tok.vocab_size}",
        flush=True,
    )

    cfg = model_lib.DEFAULTS
    model = model_lib.ByteTernaryLM(seed=args.seed)
    opt = AdamW(model.parameters(), weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)
    initial = evaluate(model, val_ids, args.seq_len, tok)
    print(
        f"model: {model.num_parameters():,} parameters; step 0 validation perplexity {initial['perplexity']:.1f}",
        flush=True,
    )

    loss_log, val_log, window = [], [], []
    warmup = min(args.warmup, max(1, args.steps // 10))
    for step in range(args.steps):
        lr = lr_at(step, args.steps, args.lr, warmup)
        batch = data.batch_windows(train_ids, args.batch_size, args.seq_len, rng)
        loss = train_step(model, opt, (batch["inputs"], batch["targets"]), lr)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}")
        window.append(loss)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            loss_log.append({"step": step + 1, "loss": float(np.mean(window)), "lr": lr})
            window = []
            print(
                f"step {step + 1:5d}  loss {loss_log[-1]['loss']:.4f}  lr {lr:.2e}  "
                f"{time.perf_counter() - start:6.0f} s",
                flush=True,
            )
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            val = evaluate(model, val_ids, args.seq_len, tok)
            val_log.append({"step": step + 1, "loss": val["loss"], "perplexity": val["perplexity"]})
            print(
                f"step {step + 1:5d}  validation loss {val['loss']:.4f}  perplexity {val['perplexity']:.1f}", flush=True
            )

    final = evaluate(model, val_ids, args.seq_len, tok)
    verification = ternary_verification(model)
    gen_rng = np.random.default_rng(args.seed + 1)
    val_paragraphs = [p for p in val_text.split("\n\n") if p.strip()]
    prompts = [" ".join(p.split()[:4]) for p in val_paragraphs[:: max(1, len(val_paragraphs) // 4)][:4]]
    samples = [{"prompt": p, "text": generate(model, tok, p, 60, gen_rng)} for p in prompts]
    report = {
        "final_train_loss": loss_log[-1]["loss"],
        "validation": final,
        "validation_perplexity": final["perplexity"],
        "validation_bits_per_byte": final["bits_per_byte"],
        "initial_validation": initial,
        "ternary_verification": verification,
        "samples": samples,
        "loss_log": loss_log,
        "validation_log": [*val_log, {"step": args.steps, "loss": final["loss"], "perplexity": final["perplexity"]}],
        "config": cfg.to_dict(),
        "preset": args.preset,
        "parameters": model.num_parameters(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "lr": args.lr,
        "warmup": warmup,
        "weight_decay": args.weight_decay,
        "tokenizer": {"type": "byte-level BPE trained on the training split", "vocab_size": tok.vocab_size},
        "split": {
            "rule": f"every {data.HOLDOUT_EVERY}th paragraph held out, split before tokenizer training",
            "train_bytes": len(train_text.encode()),
            "validation_bytes": len(val_text.encode()),
        },
        "wall_time_s": time.perf_counter() - start,
        "cpu_time_s": time.process_time(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_threads": os.cpu_count(),
    }
    write_reports(report, Path(args.out))
    print(
        f"final train loss {report['final_train_loss']:.4f}; validation perplexity {final['perplexity']:.2f}, "
        f"{final['bits_per_byte']:.3f} bits/byte; ternary {'PASS' if verification['all_ternary'] else 'FAIL'}; "
        f"{report['wall_time_s']:.0f} s",
        flush=True,
    )
    for s in samples:
        print(f"--- {s['text']!r}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
