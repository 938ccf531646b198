"""Leave-one-out retrieval quality of cbir's embeddings on a folder-per-class dataset.

    python -m benchmarks.retrieval_quality DATASET_DIR [--weights PATH] [--json OUT]

Every image queries all the others; a query hits at rank k when one of its k
nearest neighbours (itself excluded) is in its class. Prints a table of
top-1/5/10 accuracy and mAP@10, then the same figures as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.common import emit_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="folder with one subfolder per class")
    parser.add_argument("--weights", default=None, help="ResNet-50 weights (default: as cbir finds them)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON report to this file")
    args = parser.parse_args()

    from tqdm import tqdm

    from indexer.engines.load import load_embedder
    from indexer.labelled import embed_labelled, list_labelled_images
    from training.retrieval_metrics import leave_one_out

    embedder = load_embedder(args.weights)
    items = list_labelled_images(args.dataset)
    started = time.perf_counter()
    with tqdm(total=len(items), unit="img", file=sys.stderr) as bar:
        data = embed_labelled(items, embedder, on_progress=bar.update)
    seconds = time.perf_counter() - started
    report = leave_one_out(data.vectors, data.labels)
    result = {
        "dataset": str(args.dataset),
        "model_id": embedder.model_id,
        "images": len(data.labels),
        "classes": len(set(data.labels)),
        "skipped": len(data.skipped),
        "embed_seconds": round(seconds, 1),
        **report.as_dict(),
    }
    print(f"{'dataset':<12} {args.dataset}")
    print(f"{'images':<12} {result['images']} in {result['classes']} classes "
          f"({report.singletons_left_out} alone in their class, not queried; {len(data.skipped)} unreadable)")
    print(f"{'metric':<12} {'value':>8}")
    for key in ("top1", "top5", "top10", "mAP@10"):
        print(f"{key:<12} {result[key]:>8.4f}")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
