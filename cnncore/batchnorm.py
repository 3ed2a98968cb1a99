"""Training-only batch normalisation, folded into the convolution before it when training ends.

    cnnviz train --batch-norm

While training, every convolution of the network (a top-level `conv2d` layer) is followed by a
`BatchNorm2d` (as `torch.nn.BatchNorm2d` in train mode): the convolution loses its activation,
the batch norm carries it (so `forward_for_training`'s relu-before-max-pool shortcut still
applies: relu and the pool commute after the batch norm just as after the convolution). The
convolution's bias is not trained (PyTorch's `bias=False` before a batch norm): the batch norm
subtracts each channel's mean, so a bias has no effect on the output and its gradient is only
rounding noise, which Adam would turn into steps of the full learning rate.

When training ends, the running statistics are measured again for the final (or averaged)
weights on 10,000 fixed un-augmented training digits (`recompute_running_stats` says why), and
the network is used as PyTorch's `model.eval()` uses it: each batch norm normalises with its
running statistics, an affine map per channel, which `fold_batchnorm` merges into the
convolution before it (`torch.nn.utils.fusion.fuse_conv_bn_eval`). The result is the spec's
ordinary network: the app, the trace, the ONNX export and the saved model never see a
batch-norm layer.
"""

from __future__ import annotations

import numpy as np

from .layers import Conv2d, Layer
from .network import Network

# How many training digits re-estimate the running statistics of the final weights, and in
# what batches (`recompute_running_stats`).
RECALIBRATION_DIGITS = 10_000
RECALIBRATION_BATCH = 500


class BatchNorm2d(Layer):
    """Batch normalisation over NCHW, one mean and variance per channel, as torch.nn.BatchNorm2d.

    Train mode (`training=True`, the default): with the batch's per-channel mean mu and biased
    variance var over (N, H, W), z = gamma * (x - mu) / sqrt(var + eps) + beta, and the running
    statistics move towards the batch's: running_mean <- (1 - m) * running_mean + m * mu,
    running_var <- (1 - m) * running_var + m * var * n / (n - 1) (the unbiased variance, n =
    N*H*W), with m = `momentum` (0.1), or m = 1 / (number of batches seen) when `momentum` is
    None (a cumulative average, as PyTorch). Eval mode: z = gamma * (x - running_mean) /
    sqrt(running_var + eps) + beta. Then a = activation(z), as every layer.

    gamma is `params["w"]` (PyTorch's weight) and beta `params["b"]` (its bias), so the
    optimizer, `Record.grads` and the weight averaging treat them as any layer's parameters;
    the running statistics are buffers, not parameters. Shapes: x (N, C, H, W) -> same.
    """

    type = "batchnorm2d"

    def __init__(
        self,
        num_features: int,
        activation: str = "identity",
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        dtype=np.float32,
    ):
        super().__init__({"type": "batchnorm2d", "num_features": num_features})
        self.activation = activation
        self.eps, self.momentum, self.training = eps, momentum, True
        self.params = {"w": np.ones(num_features, dtype), "b": np.zeros(num_features, dtype)}
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)
        self.num_batches_tracked = 0

    def reset_running_stats(self) -> None:
        self.running_mean = np.zeros_like(self.running_mean)
        self.running_var = np.ones_like(self.running_var)
        self.num_batches_tracked = 0

    def op_forward(self, x: np.ndarray):
        gamma, beta = self.params["w"], self.params["b"]
        dt = x.dtype.type
        if not self.training:
            scale = gamma / np.sqrt(self.running_var + dt(self.eps))
            shift = beta - self.running_mean * scale
            return x * scale[:, None, None] + shift[:, None, None], None
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n < 2:
            raise ValueError("batch norm needs more than one value per channel when training")
        # (N, C, H*W) views; einsum sums each channel's values without a temporary
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        mean = np.einsum("nck->c", x3) / dt(n)
        xc = x - mean[:, None, None]
        xc3 = xc.reshape(x3.shape)
        var = np.einsum("nck,nck->c", xc3, xc3) / dt(n)  # biased: the batch's own spread
        inv_std = dt(1) / np.sqrt(var + dt(self.eps))
        z = xc * (gamma * inv_std)[:, None, None]  # gamma * x_hat + beta
        z += beta[:, None, None]
        self.num_batches_tracked += 1
        m = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        rm, rv = self.running_mean, self.running_var
        self.running_mean = ((1 - m) * rm + m * mean).astype(rm.dtype)
        self.running_var = ((1 - m) * rv + m * var * (n / (n - 1))).astype(rv.dtype)
        return z, (xc, inv_std)

    def op_backward(self, dz: np.ndarray, cache, need_dx: bool = True):
        """CS231n's batch-norm backward pass, with x_hat = (x - mu) / sqrt(var + eps) and the
        sums over (N, H, W): dbeta = sum dz, dgamma = sum dz * x_hat, and
        dx = gamma / sqrt(var + eps) / n * (n * dz - dbeta - x_hat * dgamma),
        computed as dx = a * dz - (x - mu) * b - c with per-channel a, b, c (fewer passes over
        the batch). dx keeps dz's memory layout (channels-major after a max-pool)."""
        if cache is None:
            raise ValueError("backward through a batch norm in eval mode is not supported")
        xc, inv_std = cache
        dt = dz.dtype.type
        n = dz.shape[0] * dz.shape[2] * dz.shape[3]
        dz3 = dz.reshape(dz.shape[0], dz.shape[1], -1)
        dbeta = np.einsum("nck->c", dz3)
        dgamma = np.einsum("nck,nck->c", dz3, xc.reshape(dz3.shape)) * inv_std
        dx = None
        if need_dx:
            a = self.params["w"] * inv_std
            k = a / dt(n)
            dx = dz * a[:, None, None]
            dx -= xc * (k * dgamma * inv_std)[:, None, None]
            dx -= (k * dbeta)[:, None, None]
        return dx, {"w": dgamma, "b": dbeta}


def add_batchnorm(net: Network) -> Network:
    """Put a `BatchNorm2d` after every top-level convolution of `net` (in place: its layer list
    and those convolutions' activations, which move to the batch norms). Blocks are left as
    they are. The batch norms have the convolution weights' dtype."""
    layers = []
    for layer in net.layers:
        layers.append(layer)
        if type(layer) is Conv2d:
            w = layer.params["w"]
            layers.append(BatchNorm2d(w.shape[0], layer.activation, dtype=w.dtype))
            layer.activation = "identity"
    net.layers = layers
    return net


def trainable_params(net: Network) -> list[dict[str, np.ndarray]]:
    """The optimizer's parameter list: `net.params`, except that a convolution followed by a
    batch norm offers only its weight (the arrays are shared, so steps reach the network)."""
    out = []
    for i, layer in enumerate(net.layers):
        following = net.layers[i + 1] if i + 1 < len(net.layers) else None
        if isinstance(following, BatchNorm2d):
            out.append({"w": layer.params["w"]})
        else:
            out.append(layer.params)
    return out


def recalibration_indices(n: int, seed: int) -> np.ndarray:
    """The fixed training digits (sorted indices, at most `RECALIBRATION_DIGITS`) that
    re-estimate the running statistics; their own random stream, so training is unchanged."""
    k = min(n, RECALIBRATION_DIGITS)
    return np.sort(np.random.default_rng([seed, 2]).choice(n, k, replace=False))


def recompute_running_stats(
    net: Network, x: np.ndarray, batch_size: int = RECALIBRATION_BATCH
) -> Network:
    """Re-estimate every batch norm's running statistics of `net` (in place) from `x`, as
    `torch.optim.swa_utils.update_bn`: reset them (`reset_running_stats`), set momentum None (a
    cumulative average over the batches), run the batches forward in train mode (only up to
    the last batch norm), restore the momentum.

    Why: the folded network must normalise with the statistics of its own weights on digits
    like those it will see. With weight averaging (`train(..., ema=...)`) the saved weights
    are an average of the steps' weights, but the running statistics were gathered by the
    steps' own weights as they changed; averaging those would not give the statistics of the
    averaged network, whose activations have their own means and variances, which only a
    pass with those weights measures. Without averaging, the running statistics still lag
    behind the weights (momentum 0.1) and were gathered on augmented digits. `train` so
    measures them again in both cases on un-augmented training digits: 3 epochs of 6,000
    digits of the 32/32 network scored dev 97.10 % folded with the training's running
    statistics, 97.70 % with these.
    """
    bns = [layer for layer in net.layers if isinstance(layer, BatchNorm2d)]
    if not bns:
        return net
    last = max(i for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm2d))
    saved = [(bn.momentum, bn.training) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum, bn.training = None, True
    try:
        for start in range(0, len(x), batch_size):
            a = x[start : start + batch_size]
            for layer in net.layers[: last + 1]:
                a, _ = layer.forward(a)
    finally:
        for bn, (momentum, training) in zip(bns, saved, strict=True):
            bn.momentum, bn.training = momentum, training
    return net


def fold_batchnorm(net: Network) -> Network:
    """The network as used after training, with every batch norm folded into the convolution
    before it: a plain float64 `Network` of `net.spec` (no batch-norm layers).

    The eval-mode batch norm is z = gamma * (y - running_mean) / sqrt(running_var + eps) + beta
    with y = conv(x; w, b), so per output channel, with s = gamma / sqrt(running_var + eps):
    w' = w * s and b' = (b - running_mean) * s + beta (as torch.nn.utils.fusion's
    fuse_conv_bn_weights), computed in float64; the batch norm's activation returns to the
    convolution.
    """
    params = []
    layers = net.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, BatchNorm2d):
            continue
        p = {k: v.astype(np.float64) for k, v in layer.params.items()}
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(following, BatchNorm2d):
            bn = following
            gamma, beta = (bn.params[k].astype(np.float64) for k in ("w", "b"))
            mean = bn.running_mean.astype(np.float64)
            var = bn.running_var.astype(np.float64)
            s = gamma / np.sqrt(var + bn.eps)
            p = {"w": p["w"] * s[:, None, None, None], "b": (p["b"] - mean) * s + beta}
        params.append(p)
    return Network.from_spec(net.spec, params=params)
