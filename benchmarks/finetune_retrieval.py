"""Does fine-tuning on the gallery help or hurt retrieval? ImageNet vs fine-tuned features.

    python -m benchmarks.finetune_retrieval [--train ../shared/data/gallery]
        [--retrieval ../shared/data/retrieval_food_groups] [--modes top all] [--epochs 6] [--json OUT]

Trains one model per fine-tune mode on the training set (same recipe as the
default model otherwise), then measures leave-one-out retrieval top-1/5/10 and
mAP@10 on the retrieval set with each model's pooled features, next to the
plain ImageNet features. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "data"
    parser.add_argument("--train", type=Path, default=shared / "gallery")
    parser.add_argument("--retrieval", type=Path, default=shared / "retrieval_food_groups")
    parser.add_argument("--modes", nargs="+", default=["top", "all"], choices=["head", "top", "all"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    handler = logging.StreamHandler(sys.stderr)
    for name in ("training", "indexer"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)

    from indexer.engines.load import load_embedder
    from training.evaluate import evaluate
    from training.trainer import TrainOptions, train

    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="cbir-ft-retrieval-"))
    for mode in ["imagenet", *args.modes]:
        train_seconds = 0.0
        test_accuracy = None
        model = "imagenet"
        if mode != "imagenet":
            result = train(TrainOptions(args.train, workdir / mode, fine_tune=mode, epochs=args.epochs,
                                        weights=args.weights))
            train_seconds, model = result.seconds, str(result.out_dir)
            test_accuracy = result.card["metrics"]["test"]["accuracy"]
        started = time.perf_counter()
        report = evaluate(args.retrieval, load_embedder(args.weights, model))
        rows.append({"features": mode, "train_seconds": round(train_seconds, 1),
                     "gallery_test_accuracy": test_accuracy, "eval_seconds": round(time.perf_counter() - started, 1),
                     **report.retrieval.as_dict()})
        print(json.dumps(rows[-1]), file=sys.stderr)

    print(f"retrieval on {args.retrieval} (leave-one-out), after training on {args.train}")
    print(f"{'features':<10}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP@10':>8}{'train s':>9}{'gallery acc':>12}")
    for r in rows:
        acc = f"{r['gallery_test_accuracy']:.3f}" if r["gallery_test_accuracy"] is not None else "-"
        print(f"{r['features']:<10}{r['top1']:>8.3f}{r['top5']:>8.3f}{r['top10']:>8.3f}{r['mAP@10']:>8.3f}"
              f"{r['train_seconds']:>9.0f}{acc:>12}")
    emit_json(rows, args.json)


if __name__ == "__main__":
    main()
