def layer_norm_forward(x, gamma, beta, eps=1e-5):
    return x, (gamma, beta)


def layer_norm_backward(dy, cache):
    gamma, beta = cache
    return dy, gamma, beta
