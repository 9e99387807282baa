def layer_norm_forward(x, gamma, beta eps=1e-5):
    return x
