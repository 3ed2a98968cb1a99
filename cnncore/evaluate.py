"""Score a trained digit model: dev, other people's handwriting, and (once) the official test.

    python -m cnncore.evaluate --model /tmp/runs/C                 # dev + other handwriting
    python -m cnncore.evaluate --model cnncore/models/digits --test --write \\
        --picture docs/screenshots/digits-wrong.png                # the final, single test run

`--test` scores the official 10,000 test digits and prints the confusion matrix; use it once,
on the model already chosen on dev. `--write` records the numbers in the model's JSON
(dev_accuracy, test_accuracy, confusion_matrix, other_handwriting). `--picture` draws every
wrong test digit with its label and the model's answer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import data, models, otherdigits
from .network import Network
from .train import accuracy


def predictions(net: Network, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted classes of x (N, 1, 28, 28), in float64 as the app computes them."""
    out = [
        net.predict(x[i : i + batch_size].astype(np.float64)).argmax(axis=1)
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def confusion(labels: np.ndarray, pred: np.ndarray, k: int = 10) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (labels.astype(np.int64), pred.astype(np.int64)), 1)
    return m


def other_handwriting(net: Network) -> dict[str, float]:
    blocks, labels = otherdigits.load()
    return {v: accuracy(net, otherdigits.inputs(blocks, v), labels) for v in otherdigits.VARIANTS}


def wrong_picture(
    images: np.ndarray, labels: np.ndarray, pred: np.ndarray, path: Path, per_row: int = 16
) -> int:
    """Draw each wrong digit (uint8 28x28, ink high) at 2x as dark ink on white, with
    'label as answer' under it. Returns how many were drawn."""
    from PIL import Image, ImageDraw

    wrong = np.flatnonzero(labels != pred)
    cell_w, cell_h, scale = 64, 80, 2
    rows = max(1, -(-len(wrong) // per_row))
    sheet = Image.new("L", (per_row * cell_w, rows * cell_h), 255)
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(wrong):
        r, c = divmod(k, per_row)
        digit = Image.fromarray(255 - images[i]).resize((28 * scale, 28 * scale), Image.NEAREST)
        sheet.paste(digit, (c * cell_w + 4, r * cell_h + 2))
        draw.text((c * cell_w + 10, r * cell_h + 60), f"{labels[i]} as {pred[i]}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return len(wrong)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="path without .json/.npz")
    ap.add_argument("--test", action="store_true", help="also score the official test set")
    ap.add_argument("--write", action="store_true", help="record the numbers in the JSON")
    ap.add_argument("--picture", type=Path, help="PNG of the wrong test digits (with --test)")
    args = ap.parse_args(argv)
    net, _ = models.load_file(args.model)
    split = data.load_split()
    dev_pred = predictions(net, split.x_dev)
    result: dict = {"dev_accuracy": float(np.mean(dev_pred == split.y_dev))}
    result["other_handwriting"] = other_handwriting(net)
    if args.test:
        pred = predictions(net, split.x_test)
        result["test_accuracy"] = float(np.mean(pred == split.y_test))
        result["confusion_matrix"] = confusion(split.y_test, pred).tolist()
        if args.picture:
            raw = data.load_mnist()["test_images"]
            n = wrong_picture(raw, split.y_test, pred, args.picture)
            print(f"{n} wrong test digits drawn in {args.picture}")
    print(json.dumps(result, indent=1))
    if args.write:
        doc_path = args.model.with_suffix(".json")
        doc = json.loads(doc_path.read_text())
        doc.update(result)
        doc_path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"recorded in {doc_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
