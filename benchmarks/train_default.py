"""Reproduce cbir's shipped default model (the five gallery categories, and "other") and print its test figures.

    python -m benchmarks.train_default [--data ../shared/data/gallery] [--other ../shared/data/other]
                                       [--extra DIR] [--out DIR] [--install]

Trains with the recipe below through the same pipeline as `cbir train`: the
gallery's five categories, topped up with the photos of
``python -m benchmarks.extra_photos`` (fetched into --extra when missing), and
the photos of none of them in ../shared/data/other and the extra set's other/
as the negatives. Then it prints the test-split figures: classification over
the categories and "other", and what a clean at the default threshold would
move. The card also gets the sources of the training photos and the
leave-one-source-out figures of benchmarks/results/category_sources.json
(run benchmarks/category_sources.py first when the recipe changes). With
--install the result replaces the model shipped in cbir/data/models/gallery.
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

from benchmarks.common import add_extra_option, ensure_extra_photos

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The recipe. `head` keeps the ImageNet trunk, so the model ships as a head inside the package (4 MB with the
# ImageNet classifier its scene block reads) and the index's embedding stays the ImageNet one.
RECIPE = {
    "fine_tune": "head",
    "scene": True,
    "seed": 0,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "augment_copies": 2,
    "head_epochs": 200,
    "min_per_class": 5,
}
NOTES = [
    "Trained on cbir's development gallery (../shared/data/gallery: 268 real photos from Debian, PyPI and npm "
    "packages) and 191 more photos of the categories from 20 more packages (benchmarks/extra_photos.py: people, "
    "landscapes, food, screenshots; the sources are listed under data.sources), with 243 real photos of none of "
    "the categories as 'other' (../shared/data/other and the extra set's other/).",
    "No real receipt photos ship in any package: the receipt class is trained on real scanned and "
    "photographed documents (tesseract, leptonica, unpaper and ocrmypdf test images). Expect it to "
    "catch documents in general, and to be less sure of real till receipts.",
    "Test figures come from a random held-out split, where a photo's source was also seen in training: they "
    "flatter. metrics.held_out_sources gives the figures on sources never seen in training "
    "(benchmarks/category_sources.py, leave one source out); those are the ones to expect on your photos.",
    "Fine-tune mode 'head' was chosen so the default ships inside the package and works offline "
    "with the ImageNet weights cbir provisions; `cbir train --fine-tune top|all` gives a fine-tuned trunk.",
]


def training_sources(gallery: Path, extra: Path, other: Path) -> dict[str, list[str]]:
    """{category or "other": the projects its photos come from}, as benchmarks/category_sources.py names them."""
    from benchmarks.category_sources import collect

    _, labels, projects, _ = collect([(gallery, False), (extra, False), (other, True)])
    return {c: sorted({p for p, label in zip(projects, labels, strict=True) if label == c})
            for c in sorted(set(labels))}


def shipped_held_out(result: dict) -> dict:
    """The leave-one-source-out figures of the design this script trains (benchmarks/category_sources.py)."""
    run = next(r for r in result["runs"] if r["head"] == result["shipped"]["head"]
               and r["gate"] == result["shipped"]["gate"])
    return {"protocol": "leave one source out: every photo predicted by a head fitted without its source's photos "
                        "or copies of them (benchmarks/category_sources.py)",
            "threshold": result["threshold"], "photos": result["photos"], "other_moved": run["other_moved"],
            "per_category": {c: {**m, "recall_at_precision_0.95": run["recall_at_precision_0.95"][c]}
                             for c, m in run["at_threshold"].items()},
            "per_source": run["per_source"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gallery")
    parser.add_argument("--other", type=Path, default=ROOT.parent / "shared" / "data" / "other",
                        help="photos of none of the categories (the negatives)")
    add_extra_option(parser)
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

    ensure_extra_photos(args.extra)
    combined = Path(tempfile.mkdtemp(prefix="cbir-default-data-"))
    for source in (args.data, args.extra):  # one folder per class, linking to the real files
        for path in sorted(source.glob("*/*")):
            if path.is_file() and path.parent.name != "other":
                (combined / path.parent.name).mkdir(exist_ok=True)
                (combined / path.parent.name / path.name).symlink_to(path.resolve())
    out = args.out or Path(tempfile.mkdtemp(prefix="cbir-default-")) / "gallery"
    result = train(TrainOptions(combined, out, name="gallery", notes=NOTES, weights=args.weights,
                                other=[args.other, args.extra / "other"], **RECIPE))
    card = result.card
    # The card names where the data lies relative to the repository, not on this machine.
    card["data"]["root"] = "../shared/data/gallery + benchmarks/extra_photos.py"
    card["data"]["other"] = "../shared/data/other + benchmarks/extra_photos.py (other/)"
    card["data"]["sources"] = training_sources(args.data, args.extra, args.other)
    card["recipe"] = {"script": "benchmarks/train_default.py", **RECIPE}
    held_out = ROOT / "benchmarks" / "results" / "category_sources.json"
    if held_out.is_file():
        card["metrics"]["held_out_sources"] = shipped_held_out(json.loads(held_out.read_text()))
    (result.out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")

    from training.classification_metrics import ClassificationReport

    test = card["metrics"]["test"]
    report = ClassificationReport(
        test["confusion_matrix"]["labels"], test["per_class"], test["macro_avg"], test["weighted_avg"],
        test["accuracy"], test["confusion_matrix"]["rows_true_columns_predicted"], test["samples"],
    )
    print(f"default model: {result.out_dir} ({result.seconds:.0f} s, {card['trained']['device']})")
    print(f"split: {card['split']['counts']}")
    print(report.table())
    print(report.confusion_table())
    print(json.dumps({k: test[k] for k in ("categories_only", "open_set") if k in test}, indent=2))
    if args.install:
        target = ROOT / "cbir" / "data" / "models" / "gallery"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(result.out_dir, target)
        print(f"installed into {target}")


if __name__ == "__main__":
    main()
