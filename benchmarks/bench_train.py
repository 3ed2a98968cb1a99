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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import torch_modules  # noqa: E402  (the same PyTorch mirror)


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
    mods = torch_modules(torch, net, torch.float32)
    acts = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    params = [p for m, _ in mods for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def logits(a):
        for m, act in mods:  # softmax is folded into cross_entropy's log-softmax
            a = m(a)
            a = acts[act](a) if act in acts else a
        return a

    start = time.perf_counter()
    for i in range(0, len(x), batch):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits(xt[i : i + batch]), yt[i : i + batch])
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
