"""LayerNorm with the cache spread over several return values, and a backward that takes them back."""

import numpy as np


def layernorm_fwd(x, w, b, epsilon=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    rstd = (var + epsilon) ** -0.5
    return (x - mean) * rstd * w + b, x, mean, rstd, w


def layernorm_bwd(dout, x, mean, rstd, w):
    xhat = (x - mean) * rstd
    lead = tuple(range(x.ndim - 1))
    dw = (dout * xhat).sum(lead)
    db = dout.sum(lead)
    dxhat = dout * w
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return {"dx": dx, "dw": dw, "db": db}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    y, *cache = layernorm_fwd(x, np.ones(4), np.zeros(4))
    print(layernorm_bwd(np.ones_like(y), *cache)["dx"].shape)
