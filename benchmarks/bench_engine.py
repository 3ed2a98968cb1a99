"""Engine speed on the LeNet-style network: cnncore vs the naive loop oracle vs PyTorch CPU.

    .venv/bin/python benchmarks/bench_engine.py [--quick] [--threads N]

Network: 1x28x28 -> conv 8@5x5 relu -> maxpool 2 -> conv 16@5x5 relu -> maxpool 2 -> flatten ->
dense 10 softmax, cross-entropy. Inputs are seeded random images (the speed does not depend on
the pixel values).

(a) batch-1 float64 trace: forward + backward + every recorded tensor
    engine: net.trace(x, t).to_dict()
    naive:  cnncore.naive.network_trace(...)          (fewer repeats: it is slow on purpose)
    torch:  float64 autograd with retain_grad() on every intermediate, every tensor read back
(b) float32 batch-64 training throughput (images/s: forward + backward + Adam step)
(c) the same for issue 12's digit network (conv 16@5x5 pad 2, conv 32@5x5 pad 2, dense 64; the
    bundled model is this network with 32 filters in its first conv)
    engine: the step of `cnnviz train` (train.training_step, Adam), with its
            default --conv-algorithm (auto: the digit network's second conv by FFT; LeNet's
            convolutions stay im2col), named in the output, and its use of two cores
            (train.two_cores: with 2 threads a worker process computes half of each batch)
    naive:  the oracle's batch gradients (float64, it has no float32 path) + the same Adam step
    torch:  nn.Sequential + torch.optim.Adam, float32

Times are medians of time.perf_counter() over repeats after warm-ups; the engine and PyTorch
run in alternating blocks (engine x n, torch x n, engine x n, ...), so both see the same
background load, each block after its own warm-up calls. A second table gives the best call
of each, the figure least disturbed by other processes. PyTorch gets the same number of threads
as NumPy's BLAS (OPENBLAS_NUM_THREADS, else the CPU count); `--threads N` sets both (the BLAS
environment variables are set before NumPy is imported). On a loaded machine both libraries'
spin-waiting thread pools slow down badly; compare `--threads 1`. Prints markdown tables with
the ratios and the targets of issue 2:
    trace within 1.5x PyTorch float64; training >= 30x the oracle; issue 12: training (LeNet and
    the digit network, 1 and 2 threads) >= 0.8x PyTorch float32 (see also bench_train.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path


def _threads_from_argv() -> str | None:
    """--threads must act before NumPy loads OpenBLAS, so it is read here, before the import."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if _threads_from_argv():
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncore import naive  # noqa: E402
from cnncore.memory import keep_freed_memory  # noqa: E402
from cnncore.network import Network  # noqa: E402
from cnncore.optim import Adam  # noqa: E402
from cnncore.train import (  # noqa: E402
    DEFAULT_CONV_ALGORITHM,
    DIGITS_SPEC,
    LENET_SPEC,
    training_step,
    two_cores,
)

SPEC = LENET_SPEC
BATCH = 64
TRAIN_TARGET = 0.8  # issue 12: training at >= 0.8x PyTorch float32 throughput


def numpy_threads() -> int:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def block_medians(fns: dict, rounds: int) -> dict:
    """Median time of each function, measured in alternating blocks over `rounds` rounds
    (engine x n, torch x n, naive x 1, engine x n, ...), so that all of them see the same load
    from other processes on a shared machine.

    `fns` maps a name to (fn, timed calls per block, untimed warm-up calls per block[, a
    function returning a context manager that the block runs in]). The warm-ups matter:
    NumPy's and PyTorch's thread pools both spin-wait, so the first calls after switching from
    one library to the other are not the steady state.
    """
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, per_block, warmup, *context) in fns.items():
            with context[0]() if context else contextlib.nullcontext():
                for _ in range(warmup):
                    fn()
                for _ in range(per_block):
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), len(t), min(t)) for name, t in times.items()}


# --------------------------------------------------------------------------- torch


def torch_modules(torch, net: Network, dtype):
    """The same network as an nn.Sequential holding the engine's weights."""
    nn = torch.nn
    mods = []
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
        m.to(dtype)  # before copying, so float64 weights are not rounded through float32
        if layer.params:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.params["w"]))
                m.bias.copy_(torch.from_numpy(layer.params["b"]))
        mods.append((m, spec.get("activation", "identity")))
    return mods


def torch_trace_fn(torch, net: Network, x: np.ndarray, label: int):
    """Batch-1 float64 autograd keeping and reading back every tensor the engine's trace has."""
    mods = torch_modules(torch, net, torch.float64)
    acts = {"relu": torch.relu, "softmax": lambda v: torch.softmax(v, dim=1)}
    y = torch.zeros(1, 10, dtype=torch.float64)
    y[0, label] = 1.0

    def run():
        for m, _ in mods:
            for p in m.parameters():
                p.grad = None
        a = torch.tensor(x[None], requires_grad=True)
        a.retain_grad()
        rec = []
        for m, act in mods:
            z = m(a)
            out = acts[act](z) if act in acts else z * 1.0
            z.retain_grad()
            out.retain_grad()
            rec.append((a, z, out, m))
            a = out
        loss = -(y * torch.log(a)).sum()
        loss.backward()
        tensors = []
        for a_prev, z, out, m in rec:
            tensors += [
                a_prev.detach().numpy(),
                z.detach().numpy(),
                out.detach().numpy(),
                out.grad.numpy(),
                z.grad.numpy(),
                a_prev.grad.numpy(),
            ]
            tensors += [p.grad.numpy() for p in m.parameters()]
        return float(loss.detach()), tensors

    return run


def _train_step(model: Network, opt, xb: np.ndarray, yb: np.ndarray) -> None:
    """One step as `cnnviz train` takes it (cnncore.train.train, its default conv algorithm)."""
    opt.step(training_step(model, xb, yb, DEFAULT_CONV_ALGORITHM)[2])


def torch_train_fn(torch, net: Network, x: np.ndarray, y: np.ndarray):
    mods = torch_modules(torch, net, torch.float32)
    layers = []
    for m, act in mods:
        layers.append(m)
        if act == "relu":
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)  # softmax is inside cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()

    return step


# --------------------------------------------------------------------------- main


def fmt_time(t: float | None) -> str:
    if t is None:
        return "n/a"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch")
    args = ap.parse_args()
    rounds = 1 if args.quick else 3
    block = 10 if args.quick else 20  # engine and torch calls per block (trace and training)

    threads = numpy_threads()
    # As `cnnviz train` does: reuse freed blocks instead of page-faulting on fresh ones.
    kept = keep_freed_memory()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None

    load_before = f"{os.getloadavg()[0]:.2f}"
    net = Network.from_spec(SPEC, seed=0)
    rng = np.random.default_rng(0)
    x1 = rng.uniform(0, 1, size=(1, 28, 28))
    label = 3

    # (a) batch-1 float64 trace
    fns = {"engine": (lambda: net.trace(x1, label).to_dict(), block, 3)}
    if torch is not None:
        run = torch_trace_fn(torch, net, x1, label)
        loss, _ = run()
        assert abs(loss - net.trace(x1, label).loss) < 1e-10, "torch net differs from the engine"
        fns["torch"] = (run, block, 3)
    fns["naive"] = (lambda: naive.network_trace(net.spec, net.params, x1, label), 1, 0)
    trace = block_medians(fns, rounds)

    # (b) float32 batch-64 training throughput
    xb = rng.uniform(0, 1, size=(BATCH, 1, 28, 28)).astype(np.float32)
    yb = rng.integers(0, 10, size=BATCH)
    model = net.astype(np.float32)
    opt = Adam(model.params, lr=1e-3)

    def engine_step():
        _train_step(model, opt, xb, yb)

    naive_model = net.copy()
    naive_opt = Adam(naive_model.params, lr=1e-3)

    def naive_step():
        out = naive.network_trace(naive_model.spec, naive_model.params, xb, list(yb))
        naive_opt.step(
            [
                {} if layer["dC_dw"] is None else {"w": layer["dC_dw"], "b": layer["dC_db"]}
                for layer in out["layers"]
            ]
        )

    # as `cnnviz train`: with two BLAS threads a worker process takes half of each batch
    lenet_cores = partial(two_cores, model, DEFAULT_CONV_ALGORITHM, BATCH)
    fns = {"engine": (engine_step, block, 2, lenet_cores)}
    if torch is not None:
        fns["torch"] = (torch_train_fn(torch, net, xb, yb), block, 2)
    fns["naive"] = (naive_step, 1, 0)
    train = block_medians(fns, 1 if args.quick else 2)  # the oracle: a couple of batches

    # (c) the same for the bundled digit network (16/32 channels, 5x5, padding 2)
    digit_model = Network.from_spec(DIGITS_SPEC, seed=0).astype(np.float32)
    digit_opt = Adam(digit_model.params, lr=1e-3)

    def digit_step():
        _train_step(digit_model, digit_opt, xb, yb)

    digit_cores = partial(two_cores, digit_model, DEFAULT_CONV_ALGORITHM, BATCH)
    fns = {"engine": (digit_step, block // 2, 2, digit_cores)}
    if torch is not None:
        fns["torch"] = (torch_train_fn(torch, Network.from_spec(DIGITS_SPEC, seed=0), xb, yb),)
        fns["torch"] += (block // 2, 2)
    digits = block_medians(fns, rounds)

    print(
        f"NumPy BLAS threads: {threads}; torch.set_num_threads({threads}); "
        f"glibc keeps freed memory (as in training): {kept}; training convolutions: "
        f"--conv-algorithm {DEFAULT_CONV_ALGORITHM} (as cnnviz train)"
        + ("" if torch is not None else " (PyTorch not importable)")
    )
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    print(
        f"load average before/after: {load_before} / {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} CPUs"
    )
    print_table("Medians", trace, train, digits, 0)
    print_table("Best of (the calls least disturbed by other processes)", trace, train, digits, 2)
    print(
        "timed calls: trace "
        + ", ".join(f"{k} {v[1]}" for k, v in trace.items())
        + "; training batches "
        + ", ".join(f"{k} {v[1]}" for k, v in train.items())
        + "; engine/torch/naive measured in alternating blocks"
    )


def print_table(title: str, trace: dict, train: dict, digits: dict, col: int) -> None:
    """One markdown table; `col` picks the median (0) or the best (2) time of each entry."""
    engine_trace, naive_trace = trace["engine"][col], trace["naive"][col]
    torch_trace = trace["torch"][col] if "torch" in trace else None
    engine_train, naive_train = train["engine"][col], train["naive"][col]
    torch_train = train["torch"][col] if "torch" in train else None

    def ips(t):
        return None if t is None else BATCH / t

    trace_ratio = None if torch_trace is None else engine_trace / torch_trace
    train_ratio = None if torch_train is None else ips(engine_train) / ips(torch_train)
    print()
    print(f"**{title}**")
    print()
    print(
        "| measurement | engine | naive oracle | PyTorch | engine / PyTorch | "
        "engine vs naive | target | status |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| batch-1 float64 trace (time) | {fmt_time(engine_trace)} | {fmt_time(naive_trace)} | "
        f"{fmt_time(torch_trace)} | "
        f"{'n/a' if trace_ratio is None else f'{trace_ratio:.2f}x time'} | "
        f"{naive_trace / engine_trace:.0f}x faster | <= 1.5x PyTorch time | "
        f"{status(None if trace_ratio is None else trace_ratio <= 1.5)} |"
    )
    print(
        f"| batch-64 float32 training (images/s) | {ips(engine_train):,.0f} | "
        f"{ips(naive_train):,.1f} | "
        f"{'n/a' if torch_train is None else f'{ips(torch_train):,.0f}'} | "
        f"{'n/a' if train_ratio is None else f'{train_ratio:.2f}x throughput'} | "
        f"{naive_train / engine_train:.0f}x faster | >= 0.8x PyTorch, >= 30x naive | "
        f"{status(None if train_ratio is None else train_ratio >= TRAIN_TARGET)} (PyTorch), "
        f"{status(naive_train / engine_train >= 30)} (naive) |"
    )
    engine_d = digits["engine"][col]
    torch_d = digits["torch"][col] if "torch" in digits else None
    ratio_d = None if torch_d is None else torch_d / engine_d
    print(
        f"| digit network batch-64 float32 training (images/s) | {ips(engine_d):,.0f} | n/a | "
        f"{'n/a' if torch_d is None else f'{ips(torch_d):,.0f}'} | "
        f"{'n/a' if ratio_d is None else f'{ratio_d:.2f}x throughput'} | n/a | "
        f">= 0.8x PyTorch | {status(None if ratio_d is None else ratio_d >= TRAIN_TARGET)} |"
    )
    print()


if __name__ == "__main__":
    main()
