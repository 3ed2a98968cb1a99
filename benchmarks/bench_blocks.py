"""Blocks and chains: the batch-1 float64 trace of a residual digit-sized network vs PyTorch,
and the chain (LeNet) trace vs the engine before the blocks were added.

    .venv/bin/python benchmarks/bench_blocks.py [--quick] [--baseline-ref REF]

(a) residual digit network, 1x28x28 -> conv 8@5x5 pad 2 relu -> max-pool 2 ->
    residual(conv 8@3x3 pad 1 relu, conv 8@3x3 pad 1) relu ->
    residual(conv 16@3x3 stride 2 pad 1 relu, conv 16@3x3 pad 1; projection 1x1 stride 2) relu
    -> concat(conv 8@1x1 | conv 8@3x3 pad 1 | max-pool 3 stride 1 pad 1) -> flatten ->
    dense 10 softmax, cross-entropy:
      engine: net.trace(x, t).to_dict()   (every tensor, nested entries and the split)
      torch:  tests/torch_oracle.torch_trace (float64 autograd, retain_grad() on every
              intermediate, every tensor read back, the same one the tests compare with)
(b) chains must not have slowed down: the LeNet trace (bench_engine's network) with this
    checkout's cnncore (the working tree, with whatever else is in it) and with the cnncore of
    `--baseline-ref` (default: the last commit before the layer registry and the blocks),
    extracted with `git archive` into a temporary folder and imported as a second package.

Medians over alternating blocks (bench_engine.block_medians), so every variant sees the same
background load; the ratios are the result.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import block_medians, fmt_time  # noqa: E402

from cnncore.network import Network  # noqa: E402
from cnncore.train import LENET_SPEC  # noqa: E402
from tests.torch_oracle import torch_trace  # noqa: E402

BASELINE_REF = "4dcaeb7"  # the last commit before cnncore/registry.py and blocks


def conv(c, k, s=1, p=0, act="identity"):
    return {"type": "conv2d", "out_channels": c, "kernel_size": k, "stride": s, "padding": p,
            "activation": act}  # fmt: skip


RESIDUAL_DIGITS = {
    "input_shape": [1, 28, 28],
    "layers": [
        conv(8, 5, p=2, act="relu"),
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "residual", "layers": [conv(8, 3, p=1, act="relu"), conv(8, 3, p=1)]},
        {
            "type": "residual",
            "layers": [conv(16, 3, s=2, p=1, act="relu"), conv(16, 3, p=1)],
            "projection": {"type": "conv2d", "kernel_size": 1, "stride": 2},
        },
        {
            "type": "concat",
            "branches": [
                [conv(8, 1)],
                [conv(8, 3, p=1)],
                [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
            ],
        },
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
}


def baseline_package(ref: str, into: Path):
    """The cnncore of `ref` as an importable package named cnncore_base."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "cnncore"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=data, check=True)
    (into / "cnncore").rename(into / "cnncore_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("cnncore_base.network")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline-ref", default=BASELINE_REF)
    args = ap.parse_args()
    rounds = 3 if args.quick else 10
    rng = np.random.default_rng(0)
    x = rng.random((1, 28, 28))

    net = Network.from_spec(RESIDUAL_DIGITS, seed=0)
    tr = net.trace(x, 3)
    y = tr.target
    res = block_medians(
        {
            "engine": (lambda: net.trace(x, 3).to_dict(), 20, 3),
            "torch": (lambda: torch_trace(net, x, y), 20, 3),
        },
        rounds,
    )
    n_params = sum(v.size for p in net.params for v in p.values())
    print(f"## (a) residual digit network ({n_params:,} parameters), batch-1 float64 trace\n")
    print("| | median | best | vs PyTorch (median) |\n|---|---:|---:|---:|")
    for name in ("engine", "torch"):
        med, _, best = res[name]
        print(f"| {name} | {fmt_time(med)} | {fmt_time(best)} | {med / res['torch'][0]:.2f}× |")

    with tempfile.TemporaryDirectory() as tmp:
        base_network = baseline_package(args.baseline_ref, Path(tmp))
        lenet = Network.from_spec(LENET_SPEC, seed=0)
        old = base_network.Network.from_spec(LENET_SPEC, seed=0)
        old.load_params([dict(p) for p in lenet.params])
        a, b = lenet.trace(x, 3).to_dict(), old.trace(x, 3).to_dict()
        assert a["loss"] == b["loss"]  # the same computation, the same bits
        chain = block_medians(
            {
                "this checkout": (lambda: lenet.trace(x, 3).to_dict(), 50, 5),
                f"baseline {args.baseline_ref}": (lambda: old.trace(x, 3).to_dict(), 50, 5),
            },
            rounds,
        )
    print("\n## (b) chain (LeNet) batch-1 float64 trace: this checkout vs the baseline\n")
    print("| | median | best | vs baseline (median) |\n|---|---:|---:|---:|")
    ref = chain[f"baseline {args.baseline_ref}"][0]
    for name, (med, _, best) in chain.items():
        print(f"| {name} | {fmt_time(med)} | {fmt_time(best)} | {med / ref:.2f}× |")


if __name__ == "__main__":
    main()
