"""Driver for ternary_training: finds the projection, the ternary layer, the model and the training code of a
NumPy (path B) or MLX (path A) answer, and runs them on the grader's tiny inputs. Adaptation only.

What is driven, and how (each piece in its own module of this folder):

- the projection (llmc_ternary_quant): a function W -> W_q (or -> (codes, scales), or a dict of those), called
  on a NumPy array or, for an MLX answer, on an ``mx.array``; when no function fits, a ternary layer class with
  its latent weight set to W and the identity matrix as input (its output is then W_q transposed);
- the STE: the layer's own ``backward`` (NumPy) or ``mx.grad`` through the layer (MLX), with the gradient of the
  latent weight found in the return value, in an attribute, or in the gradient tree;
- the model (llmc_ternary_model): its constructor (a class or a builder function) at a tiny Qwen3-style
  configuration, given as a config object, a dict or keyword arguments, whichever the constructor accepts;
- training (llmc_ternary_train): the answer's batching function, its train step (with its optimizer) or, for
  MLX, its loss function under ``nn.value_and_grad`` and MLX's AdamW.

Candidates are probed, and arguments bound, by the toolkit (llmc_probe's rule, llmc_bind). The functions marked
``@entry`` are the ones the suite calls; it judges the numbers they return.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.ternary_training.driver.llmc_ternary_frame import (
        GROUP,
        framework,
        load,
        method,
        mlx,
        need_framework,
        to_numpy,
    )
    from pytest_llmchallenges.challenges.ternary_training.driver.llmc_ternary_model import build_model, weight_effects
    from pytest_llmchallenges.challenges.ternary_training.driver.llmc_ternary_quant import (
        call_quantizer,
        find_weight_grad,
        layer_class,
    )
    from pytest_llmchallenges.challenges.ternary_training.driver.llmc_ternary_train import (
        batcher,
        batches,
        mlx_stepper,
        numpy_stepper,
        split_parts,
    )
    from pytest_llmchallenges.child.llmc_api import Answer, InterfaceError, Role
    from pytest_llmchallenges.child.llmc_bind import qualified_name
    from pytest_llmchallenges.child.llmc_entry import entry
except ImportError:  # inside the child, where this folder and the toolkit folder are on sys.path
    from llmc_api import Answer, InterfaceError, Role  # type: ignore[no-redef]
    from llmc_bind import qualified_name  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_ternary_frame import GROUP, framework, load, method, mlx, need_framework, to_numpy  # type: ignore[no-redef]
    from llmc_ternary_model import build_model, weight_effects  # type: ignore[no-redef]
    from llmc_ternary_quant import call_quantizer, find_weight_grad, layer_class  # type: ignore[no-redef]
    from llmc_ternary_train import batcher, batches, mlx_stepper, numpy_stepper, split_parts  # type: ignore[no-redef]

ROLES = {
    "quantizer": Role(
        prescribed=[
            "ternarize", "ternary_projection", "ternary_quantize", "quantize_ternary", "project_ternary",
            "ternarize_weights", "ternary_quant", "weight_quant", "absmean_quantize", "quantize_weights",
            "project_to_ternary", "ternarize_weight",
        ],
        patterns=[r"ternar", r"(absmean|weight).*quant", r"quantiz", r"project"],
        kind="function",
        min_params=1,
        description="ternary projection function W -> W_q",
    ),
    "layer": Role(
        prescribed=["TernaryLinear", "BitLinear", "TernaryDense", "BitLinear158", "TernaryLinearLayer"],
        patterns=[r"ternar.*(linear|dense|layer|proj)", r"bit_?linear", r"(linear|dense).*ternar", r"ternar",
                  r"quant.*linear"],
        kind="class",
        description="ternary linear layer class",
    ),
    "model": Role(
        prescribed=["Qwen3TernaryLM", "TernaryQwen3", "Qwen3Model", "Qwen3", "TernaryTransformer", "Transformer",
                    "Model", "TernaryLM", "build_model", "create_model", "make_model"],
        patterns=[r"qwen", r"^(build|make|create|init|get)_?(ternary_?)?model", r"(transformer|gpt|lm|model)$",
                  r"model"],
        kind="any",
        description="model class or builder taking a configuration",
    ),
    "config": Role(
        prescribed=["Qwen3Config", "ModelConfig", "Config", "ModelArgs", "TransformerConfig"],
        patterns=[r"config$", r"args$", r"config", r"hparams"],
        kind="class",
        description="model configuration class",
    ),
    "batch": Role(
        prescribed=["get_batch", "make_batch", "sample_batch", "get_batches", "batch_iterator", "iterate_batches"],
        patterns=[r"get_?batch", r"batch"],
        kind="function",
        min_params=1,
        description="batching function (tokens, batch_size, seq_len) -> (x, y)",
    ),
    "train_step": Role(
        prescribed=["train_step", "training_step", "train_on_batch"],
        patterns=[r"train.*step", r"^step$", r"update_step"],
        kind="function",
        min_params=2,
        description="train step (model, optimizer, x, y[, lr]) -> loss",
    ),
    "optimizer": Role(
        prescribed=["AdamW", "Adam", "AdamWOptimizer"],
        patterns=[r"adam", r"optim"],
        kind="class",
        description="optimizer class",
    ),
    "loss": Role(
        prescribed=["loss_fn", "compute_loss", "loss_and_grad", "cross_entropy_loss", "lm_loss", "loss"],
        patterns=[r"loss", r"cross_?entropy"],
        kind="function",
        min_params=2,
        description="loss function (model, x, y) -> scalar",
    ),
    "split": Role(
        prescribed=["split_train_validation", "train_val_split", "split_data", "split_dataset", "train_test_split",
                    "split_text"],
        patterns=[r"split", r"held_?out"],
        kind="function",
        min_params=1,
        description="train/validation split function",
    ),
}  # fmt: skip


# -- projection and STE --------------------------------------------------------------------------------------------
@entry
def project(sub: Answer, weights: list[np.ndarray]) -> dict:
    """Each weight's ternary projection by the answer's own code: {how, results: [{projected, codes?, scales?}]}."""
    skip = need_framework(sub)
    if skip:
        return skip
    problems = []
    if sub.candidates("quantizer"):
        try:
            fn, first = sub.drive("quantizer", load, lambda f: call_quantizer(sub, f, weights[0]))
            rest = [call_quantizer(sub, fn, w) for w in weights[1:]]
            return {"how": f"function {qualified_name(fn)} ({first['form']})", "results": [first, *rest]}
        except InterfaceError as exc:
            problems.append(str(exc).splitlines()[0][:400])
    make = layer_class(sub)
    results = []
    for w in weights:
        layer = make(w.shape[1], w.shape[0])
        results.append({"projected": layer.projected(w), "form": "layer output for the identity"})
    how = f"{layer.describe()}, identity input" + (f" (no projection function: {problems[0]})" if problems else "")
    return {"how": how, "results": results}


@entry
def ste_gradient(sub: Answer, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> dict:
    """The gradient of the latent weight for L = sum(layer(x) * dy), in (out, in) layout, plus the output."""
    skip = need_framework(sub)
    if skip:
        return skip
    layer = layer_class(sub)(w.shape[1], w.shape[0])
    layer.set_weight(w)
    if framework(sub) == "mlx":
        mx, nn = mlx()  # type: ignore[misc]
        dy_mx = mx.array(dy.astype(np.float32))

        def loss(xx: Any) -> Any:
            return (layer.obj(xx) * dy_mx).sum()

        value_and_grad = nn.value_and_grad(layer.obj, loss)
        _, grads = sub.call(value_and_grad, mx.array(x.astype(np.float32)))
        if layer.attr not in grads:
            raise InterfaceError(f"mx.grad through {layer.describe()} gave no gradient for {layer.attr!r}")
        grad = to_numpy(grads[layer.attr], "weight gradient")
        y = to_numpy(layer.forward(x), "layer output")
        how = f"{layer.describe()}, nn.value_and_grad"
    else:
        y = to_numpy(layer.forward(x), "layer output")
        before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(layer.obj).items()}
        bwd = method(layer.obj, r"^(backward|bwd|backprop|backward_pass|grad)$")
        if bwd is None:
            raise InterfaceError(f"{layer.describe()} has no backward method")
        out = sub.call(bwd, dy.astype(np.float32))
        grad, where = find_weight_grad(layer, out, before)
        how = f"{layer.describe()}, {qualified_name(bwd)} -> {where}"
    if layer.transposed:
        grad = grad.T
    return {"grad": grad, "y": y, "how": how}


@entry
def latent_dtype(sub: Answer) -> dict:
    """The dtype of the ternary layer's latent weight (MLX answers; NumPy answers report their framework)."""
    if framework(sub) != "mlx":
        return {"framework": "numpy"}
    skip = need_framework(sub)
    if skip:
        return skip
    layer = layer_class(sub)(2 * GROUP, GROUP)
    dtype = getattr(layer.obj, layer.attr).dtype
    return {"framework": "mlx", "dtype": str(dtype).rsplit(".", 1)[-1], "how": layer.describe()}


# -- the model -----------------------------------------------------------------------------------------------------
@entry
def model_weights(sub: Answer, vocab: int, ids: np.ndarray) -> dict:
    """For every 2-D weight of the answer's tiny model: how much the logits move (relative) when the latent weight
    is replaced by a matrix with the same ternary projection (groups along the last or the first axis), and when
    it is replaced by its row-reversed self (a different projection)."""
    skip = need_framework(sub)
    if skip:
        return skip
    model, how, vocab = build_model(sub, vocab)
    return {"how": how, "vocab": vocab, "weights": weight_effects(sub, model, vocab, ids)}


# -- data and training -----------------------------------------------------------------------------------------------
@entry
def batch_pairs(sub: Answer, tokens: np.ndarray, batch_size: int, seq_len: int) -> dict:
    """What the answer's batching function makes of ``tokens``: {how, x, y} for (inputs, targets) pairs,
    {how, windows} for plain windows, {tried} when no batching function can be driven (a failed probe)."""
    return need_framework(sub) or batches(sub, tokens, batch_size, seq_len)


@entry
def train(
    sub: Answer,
    tokens: np.ndarray,
    vocab: int,
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float,
    check_ids: np.ndarray | None = None,
) -> dict:
    """Train the answer's tiny model on ``tokens`` with its own batching and step; the loss of every step,
    and (with ``check_ids``) the weight effects of the trained model."""
    skip = need_framework(sub)
    if skip:
        return skip
    model, built, vocab = build_model(sub, vocab)
    draw, batching = batcher(sub, tokens, batch_size, seq_len)
    stepper = mlx_stepper if framework(sub) == "mlx" else numpy_stepper
    step, stepping = stepper(sub, model, lr, draw())
    losses = []
    for _ in range(steps):
        x, y = draw()
        losses.append(step(x, y))
    result = {"losses": np.asarray(losses), "how": f"{built}; {batching}; {stepping}"}
    if check_ids is not None:
        result["weights"] = weight_effects(sub, model, vocab, check_ids)
    return result


@entry
def split(sub: Answer, text: str, tokens: np.ndarray) -> dict:
    """The answer's train/validation split applied to a text (or, if it takes tokens, to ``tokens``)."""
    return need_framework(sub) or split_parts(sub, text, tokens)
