"""Reproduce cbir's shipped default model (the five gallery categories) and print its test figures.

    python -m benchmarks.train_default [--data ../shared/data/gallery] [--out DIR] [--install]

Trains with the recipe below through the same pipeline as `cbir train`,
then prints the test-split classification report. With --install the result
replaces the model shipped in cbir/data/models/gallery.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The recipe. `head` keeps the ImageNet trunk, so the model ships as a ~50 KB head inside the
# package and the index's embedding stays the ImageNet one (see the closing figures in README).
RECIPE = {
    "fine_tune": "head",
    "seed": 0,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "augment_copies": 2,
    "head_epochs": 200,
    "min_per_class": 5,
}
NOTES = [
    "Trained on cbir's development gallery (../shared/data/gallery): 268 real photos from Debian, PyPI "
    "and npm packages, small and unbalanced (food 105, screenshot 78, receipt 59, people 13, landscape 13).",
    "No real receipt photos ship in any package: the receipt class is trained on real scanned and "
    "photographed documents (tesseract, leptonica, unpaper and ocrmypdf test images). Expect it to "
    "catch documents in general, and to be less sure of real till receipts.",
    "Test figures come from 41 held-out images (2 each for people and landscape): treat them as rough.",
    "Fine-tune mode 'head' was chosen so the default ships inside the package (kilobytes) and works offline "
    "with the ImageNet weights cbir provisions; `cbir train --fine-tune top|all` gives a fine-tuned trunk.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gallery")
    parser.add_argument("--out", type=Path, default=None, help="model folder to write (default: a temp folder)")
    parser.add_argument("--install", action="store_true", help="replace cbir/data/models/gallery with the result")
    parser.add_argument("--weights", default=None, help="ResNet-50 ImageNet weights (default: as cbir finds them)")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data} does not exist")

    handler = logging.StreamHandler(sys.stderr)
    for name in ("training", "indexer"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)

    from training.trainer import CARD_FILE, TrainOptions, train

    out = args.out or Path(tempfile.mkdtemp(prefix="cbir-default-")) / "gallery"
    result = train(TrainOptions(args.data, out, name="gallery", notes=NOTES, weights=args.weights, **RECIPE))
    card = result.card
    # The card names where the data lies relative to the repository, not on this machine.
    card["data"]["root"] = "../shared/data/gallery"
    card["recipe"] = {"script": "benchmarks/train_default.py", **RECIPE}
    (result.out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")

    from training.classification_metrics import ClassificationReport

    test = card["metrics"]["test"]
    report = ClassificationReport(
        card["classes"], test["per_class"], test["macro_avg"], test["weighted_avg"], test["accuracy"],
        test["confusion_matrix"]["rows_true_columns_predicted"], test["samples"],
    )
    print(f"default model: {result.out_dir} ({result.seconds:.0f} s, {card['trained']['device']})")
    print(f"split: {card['split']['counts']}")
    print(report.table())
    print(report.confusion_table())
    if args.install:
        target = ROOT / "cbir" / "data" / "models" / "gallery"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(result.out_dir, target)
        print(f"installed into {target}")


if __name__ == "__main__":
    main()
