"""Bit-for-bit check of the training path against a reference commit.

    git worktree add --detach /tmp/ref71 71fdbcd        # once
    .venv/bin/python benchmarks/check_bitexact.py --conv-algorithm im2col [--threads 2]
    .venv/bin/python benchmarks/check_bitexact.py [--ref /tmp/ref71] [--steps 20]

The README promises that `cnnviz train --conv-algorithm im2col` with
OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1 and a seed repeats the bundled model bit for bit. A faster
im2col engine must therefore compute every float32 sum in the same order. `--conv-algorithm`
(default: `cnnviz train`'s default, "auto", which convolves the digit networks' second layer by
FFT) is passed to the tree under test; with "auto" or "fft" the networks that use the FFT are
expected to differ (same maths, other rounding: the report then says how much), so only
"im2col" can pass for every network.

For each network (the digit network 16/32 dense 64, a 32/32 variant, and LeNet) this trains
`--steps` Adam steps of batch 64 on real MNIST training digits with augmentation (shift,
rotation, scale and pen-width jitter, as `cnnviz train` does, seed 1) and the EMA 0.999 weight
averaging of the bundled recipe (the averaged weights are compared) once with the reference
tree's `cnncore` and once with this tree's, each in a fresh process with one BLAS thread
(`--threads 2`: the tree under test with two, as `cnnviz train` then runs its convolutions on
two threads), and compares the float32 weights bit for bit (also the per-step losses). Exit
status 0 when every network is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AUGMENT = {"max_shift": 2.0, "max_rotation_deg": 12.0, "scale_range": 0.12}
STROKE = 0.3
EMA = 0.999  # the bundled recipe's weight averaging: the averaged weights are compared
LR = 2e-3
SEED = 1


def _specs(train_module) -> dict[str, dict]:
    digits = train_module.DIGITS_SPEC
    wide = copy.deepcopy(digits)
    wide["layers"][0]["out_channels"] = 32
    return {"digits 16/32": digits, "digits 32/32": wide, "LeNet": train_module.LENET_SPEC}


def _worker(tree: Path, steps: int, out: Path, conv_algorithm: str | None) -> None:
    sys.path.insert(0, str(tree))
    import numpy as np

    import cnncore
    from cnncore import data
    from cnncore import train as training
    from cnncore.network import Network

    where = Path(cnncore.__file__).resolve()
    if tree.resolve() not in where.parents:
        raise SystemExit(f"imported {where}, not from {tree}")
    options = {}
    if conv_algorithm is not None:  # the tree under test (the reference has no such option)
        options["conv_algorithm"] = conv_algorithm
    split = data.load_split()
    n = steps * 64
    x, y = split.x_train[:n], split.y_train[:n]
    arrays, losses = {}, {}
    for name, spec in _specs(training).items():
        net = Network.from_spec(spec, seed=SEED)
        model, history = training.train(
            net,
            x,
            y,
            epochs=1,
            batch_size=64,
            optimizer="adam",
            lr=LR,
            schedule="cosine",
            augmentation=True,
            augment_options=AUGMENT,
            stroke=STROKE,
            ema=EMA,
            seed=SEED,
            progress=False,
            **options,
        )
        losses[name] = history[0]["loss"]
        for i, params in enumerate(model.params):
            for k, v in params.items():
                arrays[f"{name}|{i}|{k}"] = np.asarray(v)
    np.savez(out, **arrays)
    print(json.dumps({"losses": losses, "cnncore": str(where)}))


def _run(
    tree: Path, steps: int, out: Path, threads: int = 1, conv_algorithm: str | None = None
) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--worker", str(tree), "--steps", str(steps)]
    if conv_algorithm is not None:
        cmd += ["--conv-algorithm", conv_algorithm]
    cmd.append("--out")
    proc = subprocess.run([*cmd, str(out)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker for {tree} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", type=Path, default=Path("/tmp/ref71"), help="reference work tree")
    ap.add_argument("--tree", type=Path, default=ROOT, help="tree under test (default: this)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads of the tree under test (the reference always runs with one)",
    )
    ap.add_argument(
        "--conv-algorithm",
        choices=("auto", "im2col", "fft"),
        help="the tree under test's training convolutions (default: cnnviz train's default)",
    )
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.steps, args.out, args.conv_algorithm)
        return 0
    if args.conv_algorithm is None:
        sys.path.insert(0, str(args.tree))
        from cnncore.train import DEFAULT_CONV_ALGORITHM

        args.conv_algorithm = DEFAULT_CONV_ALGORITHM
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        ref_out, new_out = Path(tmp, "ref.npz"), Path(tmp, "new.npz")
        ref_meta = _run(args.ref, args.steps, ref_out)
        new_meta = _run(args.tree, args.steps, new_out, args.threads, args.conv_algorithm)
        ref, new = np.load(ref_out, allow_pickle=False), np.load(new_out, allow_pickle=False)
        ok = sorted(ref.files) == sorted(new.files)
        names = dict.fromkeys(k.split("|")[0] for k in ref.files)
        for name in names:
            keys = [k for k in ref.files if k.startswith(name + "|")]
            diff = [k for k in keys if k not in new.files or ref[k].tobytes() != new[k].tobytes()]
            same_loss = ref_meta["losses"][name] == new_meta["losses"][name]
            if diff or not same_loss:
                ok = False
                worst = max(
                    (float(np.max(np.abs(ref[k] - new[k]))) for k in diff if k in new.files),
                    default=0.0,
                )
                print(
                    f"{name}: DIFFERENT ({len(diff)} of {len(keys)} arrays, max |diff| "
                    f"{worst:.3g}; loss {ref_meta['losses'][name]!r} vs "
                    f"{new_meta['losses'][name]!r})"
                )
            else:
                dtypes = {str(ref[k].dtype) for k in keys}
                print(
                    f"{name}: bit-identical after {args.steps} Adam steps ({len(keys)} arrays, "
                    f"{'/'.join(sorted(dtypes))}, loss {ref_meta['losses'][name]!r})"
                )
    print(
        f"reference {ref_meta['cnncore']} (1 thread)\n"
        f"under test {new_meta['cnncore']} ({args.threads} thread(s), "
        f"--conv-algorithm {args.conv_algorithm})"
    )
    print("OK: bit-identical" if ok else "FAILED: not bit-identical")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
