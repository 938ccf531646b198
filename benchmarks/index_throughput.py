"""End-to-end `cbir index` images/s on a folder of real photos, against the seeds' way, same run.

    python -m benchmarks.index_throughput DIR [--runs 3] [--json OUT] [--cbir-args "--runtime keras"]

cbir's way: `cbir index DIR` into a fresh temporary index (threads reading,
hashing and decoding in draft mode while the model embeds, SQLite + FAISS
writes); its own run time, model loading excluded (and so is the one-time
LiteRT export, which is made before the first run and reused from the cache). The seeds' way: for each
file a full Pillow decode, RGB conversion and resize to 224x224, then
`keras.Model.predict` on batches of 32 and FAISS `add`, timed the same way
(model already loaded). Each is run --runs times; prints medians, min-max and
their ratio, then JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cbir_way(folder: Path, extra: list[str]) -> tuple[float, int]:
    from cbir.config import cache_dir

    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as home:
        env = {**os.environ, "CBIR_HOME": home, "CBIR_CACHE": str(cache_dir())}
        env.setdefault("CBIR_WEIGHTS", str(_weights()))
        proc = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--json", "-q", *extra], env=env,
                              capture_output=True, text=True, check=True)
        summary = json.loads(proc.stdout)
        return summary["seconds"], summary["added"]


def _weights() -> Path:
    from indexer.weights import ensure_weights

    return ensure_weights().path


def seeds_way(files: list[Path], model, batch: int = 32) -> tuple[float, int]:
    import faiss
    import numpy as np
    from PIL import Image

    from indexer.resnet import preprocess

    index = faiss.IndexFlatIP(2048)
    started = time.perf_counter()
    done = 0
    pending = []
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pending.append(np.asarray(image.convert("RGB").resize((224, 224)), dtype=np.uint8))
        except Exception:
            pass
        if len(pending) == batch or (i == len(files) - 1 and pending):
            features = model.predict(preprocess(np.stack(pending)), verbose=0)
            features /= np.linalg.norm(features, axis=1, keepdims=True)
            index.add(features.astype(np.float32))
            done += len(pending)
            pending = []
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cbir-args", default="", help="Extra `cbir index` options, e.g. \"--batch-size 8\".")
    args = parser.parse_args()
    extra = args.cbir_args.split()

    import keras

    from indexer.loader import supported_extensions
    from indexer.resnet import build_resnet50, imagenet_trunk

    files = sorted(p for p in args.folder.rglob("*") if p.is_file() and p.suffix.lower() in supported_extensions())
    full = build_resnet50()
    full.load_weights(_weights())
    trunk = imagenet_trunk(full)
    trunk.predict(keras.ops.zeros((1, 224, 224, 3)), verbose=0)

    results = {"cbir": [], "seeds": []}
    cbir_way(ROOT / "examples" / "photos", extra)  # makes the LiteRT export once, outside the timed runs
    for _ in range(args.runs):
        seconds, n = cbir_way(args.folder, extra)
        results["cbir"].append(n / seconds)
        seconds, n = seeds_way(files, trunk)
        results["seeds"].append(n / seconds)
        print(json.dumps({k: [round(v, 2) for v in vals] for k, vals in results.items()}), file=sys.stderr)
    summary = {
        "folder": str(args.folder),
        "files": len(files),
        "runs": args.runs,
        "cbir_args": extra,
        **{f"{k}_images_per_s": {"median": round(statistics.median(v), 2), "min": round(min(v), 2),
                                 "max": round(max(v), 2)} for k, v in results.items()},
    }
    summary["ratio"] = round(statistics.median(results["cbir"]) / statistics.median(results["seeds"]), 2)
    print(f"{len(files)} files in {args.folder}, {args.runs} runs each")
    for key in ("cbir", "seeds"):
        s = summary[f"{key}_images_per_s"]
        print(f"{key:<6} {s['median']:>7.2f} images/s (min {s['min']:.2f}, max {s['max']:.2f})")
    print(f"ratio  {summary['ratio']:.2f}x")
    emit_json(summary, args.json)


if __name__ == "__main__":
    main()
