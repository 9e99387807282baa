"""Self-checks of the hand-written model: run ``python verify.py``; exits non-zero on any failure.

1. Backpropagation: the model's gradients against central finite differences in float64 at a tiny
   configuration. The projection is swapped for the identity here, because round() has zero derivative
   almost everywhere: what this checks is dL/dW_q, which the STE hands to the latent weights unchanged.
2. STE: with the projection on, each layer's latent gradient equals dL/dW_q = dY^T X exactly.
3. Projection: every weight matrix of a model projects to {-1, 0, +1} x its group's mean |W|.
"""

from __future__ import annotations

import sys

import model as model_lib
import numpy as np
import ternary


def _as_float64(lm: model_lib.Qwen3TernaryLM) -> None:
    for mod in lm.named_modules().values():
        mod.weight = mod.weight.astype(np.float64)
        mod.grad = np.zeros_like(mod.weight)


def check_backprop(seed: int = 0) -> float:
    """Worst relative error of analytic vs finite-difference gradients over sampled weights."""
    cfg = model_lib.tiny_config(vocab_size=48)
    projection = ternary.ternary_projection
    ternary.ternary_projection = lambda w, group_size=ternary.GROUP_SIZE: w
    try:
        lm = model_lib.Qwen3TernaryLM(cfg, seed=seed)
        _as_float64(lm)
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, cfg.vocab_size, size=(2, 9))
        targets = rng.integers(0, cfg.vocab_size, size=(2, 9))

        def loss() -> float:
            logits = lm.forward(ids).astype(np.float64)
            z = logits - logits.max(-1, keepdims=True)
            lse = np.log(np.exp(z).sum(-1))
            return float(np.mean(lse - np.take_along_axis(z, targets[..., None], -1)[..., 0]))

        lm.zero_grad()
        logits = lm.forward(ids).astype(np.float64)
        z = logits - logits.max(-1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        p[np.arange(2)[:, None], np.arange(9)[None, :], targets] -= 1.0
        lm.backward(p / targets.size)
        worst = 0.0
        for name, mod in lm.named_modules().items():
            flat = mod.weight.reshape(-1)
            for idx in rng.choice(flat.size, size=min(6, flat.size), replace=False):
                old = flat[idx]
                flat[idx] = old + 1e-6
                up = loss()
                flat[idx] = old - 1e-6
                down = loss()
                flat[idx] = old
                numeric = (up - down) / 2e-6
                analytic = mod.grad.reshape(-1)[idx]
                err = abs(numeric - analytic) / max(1e-4, abs(numeric) + abs(analytic))
                worst = max(worst, err)
                if err > 1e-5:
                    print(f"  {name}[{idx}]: analytic {analytic:.6g} numeric {numeric:.6g}")
        return worst
    finally:
        ternary.ternary_projection = projection


def check_ste(seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    layer = ternary.TernaryLinear(200, 24, rng=rng)
    x = rng.standard_normal((3, 5, 200)).astype(np.float32)
    dy = rng.standard_normal((3, 5, 24)).astype(np.float32)
    layer.forward(x)
    layer.backward(dy)
    expected = dy.reshape(-1, 24).T.astype(np.float64) @ x.reshape(-1, 200)
    return float(np.abs(layer.grad - expected).max() / np.abs(expected).max())


def check_projection(seed: int = 2) -> float:
    lm = model_lib.Qwen3TernaryLM(model_lib.tiny_config(), seed=seed)
    worst = 0.0
    for mod in lm.named_modules().values():
        if isinstance(mod, (ternary.TernaryLinear, ternary.TernaryEmbedding)):
            w = mod.weight
            wq = mod.projected_weight()
            worst = max(worst, ternary.verify_ternary(wq))
            _codes, scales = ternary.ternarize(w)
            assert np.allclose(scales[..., 0], np.abs(w[..., :128]).mean(-1), rtol=1e-6)
    return worst


def main() -> int:
    results = {
        "backprop (max rel. error vs finite differences)": (check_backprop(), 1e-5),
        "STE (latent grad vs dY^T X)": (check_ste(), 1e-5),
        "projection (max |W_q/s - round|)": (check_projection(), 1e-5),
    }
    ok = True
    for name, (value, tol) in results.items():
        good = value <= tol
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name}: {value:.3g} (tolerance {tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
