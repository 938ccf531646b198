"""Images/s and fidelity of each ResNet-50 inference path on real photos, against this CPU's float32 peak.

    python benchmarks/inference.py [--images DIR] [--count 64] [--runs 5] [--threads N] [--json OUT]

Paths: Keras predict_on_batch (the float32 reference), Keras with XLA, and
TFLite with XNNPACK at float32, float16 weights and dynamic-range int8
(converted from the same Keras model in this run). For each: images/s as the
median and min-max of --runs timed passes over the images, that as a share of
the machine's float32 ceiling (a large float32 matmul timed in this run,
divided by ResNet-50's 7.7 GFLOP per image), and fidelity to the reference:
the lowest embedding cosine similarity and the share of images whose
top category agrees. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

GFLOP_PER_IMAGE = 7.7  # ResNet-50 at 224x224, multiply-adds counted as two operations


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def load_photos(folder: Path, count: int) -> np.ndarray:
    from indexer.loader import load_image, supported_extensions

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in supported_extensions())
    step = max(1, len(files) // count)
    pixels = []
    for path in files[::step]:
        try:
            pixels.append(load_image(path)[0])
        except Exception:
            continue
        if len(pixels) == count:
            break
    return np.stack(pixels)


def tflite_runner(saved_model: str, kind: str, threads: int, batch: int):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "dynamic-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, 224, 224, 3])
    interpreter.allocate_tensors()
    outputs = sorted(interpreter.get_output_details(), key=lambda d: -d["shape"][-1] if d["shape"][-1] == 2048 else 0)
    features = next(d["index"] for d in outputs if d["shape"][-1] == 2048)
    heads = [d for d in outputs if d["shape"][-1] not in (2048, 1000)]

    def run(x: np.ndarray):
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(features), (interpreter.get_tensor(heads[0]["index"]) if heads else None)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "gallery")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.images.is_dir():
        args.images = ROOT / "examples" / "photos"

    import tensorflow as tf

    from indexer.embedder import load_embedder
    from indexer.resnet import preprocess

    photos = load_photos(args.images, args.count)
    x = preprocess(photos)
    peak = matmul_peak_gflops()
    ceiling = peak / GFLOP_PER_IMAGE
    embedder = load_embedder(None, "default")
    net = embedder._net
    batches = [x[i : i + args.batch] for i in range(0, len(x) - len(x) % args.batch, args.batch)]

    def keras_run(batch):
        out = net.predict_on_batch(batch)
        return np.asarray(out[0]), np.asarray(out[-1])

    xla = tf.function(lambda batch: net(batch, training=False), jit_compile=True)

    def xla_run(batch):
        out = xla(tf.constant(batch))
        return out[0].numpy(), out[-1].numpy()

    saved = tempfile.mkdtemp(prefix="cbir-export-")
    net.export(saved, verbose=False)
    paths = {"keras": keras_run, "keras-xla": xla_run}
    for kind in ("float32", "float16", "dynamic-int8"):
        paths[f"tflite-{kind}"] = tflite_runner(saved, kind, args.threads, args.batch)

    reference = None
    rows = []
    for name, run in paths.items():
        outputs = [run(b) for b in batches]  # warm-up, and the outputs for fidelity
        feats = np.concatenate([o[0] for o in outputs])
        cats = np.concatenate([o[1] for o in outputs]).argmax(axis=1)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        if reference is None:
            reference = (feats, cats)
        times = [_timed(lambda: [run(b) for b in batches]) for _ in range(args.runs)]
        rates = [len(batches) * args.batch / t for t in times]
        row = {
            "path": name,
            "images_per_s_median": round(statistics.median(rates), 2),
            "images_per_s_min": round(min(rates), 2),
            "images_per_s_max": round(max(rates), 2),
            "share_of_float32_ceiling": round(statistics.median(rates) / ceiling, 3),
            "min_cosine_to_keras": round(float((feats * reference[0]).sum(axis=1).min()), 5),
            "category_agreement": round(float((cats == reference[1]).mean()), 4),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    print(f"{len(batches) * args.batch} real photos from {args.images}, batch {args.batch}, {args.threads} threads; "
          f"float32 matmul peak {peak:.0f} GFLOP/s = ceiling {ceiling:.1f} images/s")
    print(f"{'path':<22}{'img/s':>8}{'min-max':>14}{'of peak':>9}{'min cos':>9}{'cat agree':>10}")
    for r in rows:
        print(f"{r['path']:<22}{r['images_per_s_median']:>8.1f}"
              f"{r['images_per_s_min']:>7.1f}-{r['images_per_s_max']:<6.1f}{r['share_of_float32_ceiling']:>9.2f}"
              f"{r['min_cosine_to_keras']:>9.4f}{r['category_agreement']:>10.3f}")
    result = {"images": len(batches) * args.batch, "batch": args.batch, "threads": args.threads,
              "peak_gflops": round(peak, 1), "ceiling_images_per_s": round(ceiling, 2), "paths": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
