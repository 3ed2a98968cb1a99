"""Training throughput: one epoch of the digit network, cnncore vs PyTorch CPU.

    .venv/bin/python benchmarks/bench_train.py [--epochs 1] [--batch-size 64]

Both train the bundled digit network's spec from the same initial weights on the same 8,500
training digits in the same order, float32, Adam, batch 64, no augmentation (augmentation is
the same SciPy code for both and would only blur the comparison). Prints images/s and the ratio.
Both use the same number of threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncore import Network, data, models  # noqa: E402
from cnncore.memory import keep_freed_memory  # noqa: E402
from cnncore.optim import Adam  # noqa: E402


def engine_epoch(net: Network, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    model = net.astype(np.float32)
    opt = Adam(model.params, lr=1e-3)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        _, grads = model.loss_and_grads(x[i : i + batch], y[i : i + batch])
        opt.step(grads)
    return time.perf_counter() - start


def torch_epoch(net: Network, x: np.ndarray, y: np.ndarray, batch: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    mods: list[nn.Module] = []
    for spec, layer in zip(net.spec["layers"], net.layers, strict=True):
        t = spec["type"]
        if t == "conv2d":
            m = nn.Conv2d(
                spec["in_channels"],
                spec["out_channels"],
                spec["kernel_size"],
                spec["stride"],
                spec["padding"],
            )
        elif t == "dense":
            m = nn.Linear(spec["in_features"], spec["units"])
        elif t == "maxpool2d":
            m = nn.MaxPool2d(spec["kernel_size"], spec["stride"], spec["padding"])
        elif t == "avgpool2d":
            m = nn.AvgPool2d(spec["kernel_size"], spec["stride"], spec["padding"])
        else:
            m = nn.Flatten()
        if layer.params:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.params["w"]))
                m.bias.copy_(torch.from_numpy(layer.params["b"]))
        mods.append(m)
        act = spec.get("activation", "identity")
        if act in ("relu", "sigmoid", "tanh"):
            mods.append({"relu": nn.ReLU(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[act])
    model = nn.Sequential(*mods).float()  # softmax is folded into cross_entropy's log-softmax
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt[i : i + batch]), yt[i : i + batch])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    keep_freed_memory()  # as `cnnviz train` does
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    net, _ = models.load("digits")
    split = data.load_split()
    x, y = split.x_train, split.y_train
    n = len(x) * args.epochs
    engine_epoch(net, x[:256], y[:256], args.batch_size)  # warm-up
    t_engine = sum(engine_epoch(net, x, y, args.batch_size) for _ in range(args.epochs))
    torch_epoch(net, x[:256], y[:256], args.batch_size)
    t_torch = [torch_epoch(net, x, y, args.batch_size) for _ in range(args.epochs)]
    print(
        f"digit network {net.spec['param_count']:,} parameters, batch {args.batch_size}, "
        f"{n:,} images, float32, Adam, {threads} threads\n"
    )
    print("| implementation | seconds | images/s |")
    print("| --- | ---: | ---: |")
    print(f"| cnncore (NumPy) | {t_engine:.1f} | {n / t_engine:,.0f} |")
    if t_torch[0] is not None:
        tt = sum(t_torch)
        print(f"| PyTorch CPU | {tt:.1f} | {n / tt:,.0f} |")
        print(f"\ncnncore / PyTorch throughput: {tt / t_engine:.2f}×")
    else:
        print("\nPyTorch is not importable: `pip install torch==2.13.0` to compare.")


if __name__ == "__main__":
    main()
