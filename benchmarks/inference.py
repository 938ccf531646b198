"""Images/s and fidelity of each ResNet-50 inference path on real photos, against this CPU's float32 peak.

    python -m benchmarks.inference [--images DIR] [--retrieval DIR] [--count 64] [--runs 5] [--json OUT]

The model is the one cbir indexes with by default (ImageNet ResNet-50 +
the default category head). Paths: Keras predict_on_batch (the float32
reference), Keras with XLA, LiteRT/TFLite with XNNPACK at float16 weights,
dynamic-range int8 and full-integer int8 calibrated on 32 other photos (not
cbir engines: measured to show why); onnxruntime float32 and
dynamic int8 when `tf2onnx` and `onnxruntime` are installed; and every engine cbir can run on this
machine (LiteRT float32, OpenVINO float32, bf16/f16 where the CPU has it, int8), from cbir's own
exports, the one `auto` picks for bulk work marked.

Speed: --runs timed passes over --count photos (batch --batch), the paths
taking turns so that load on the machine hits all alike; median and min-max
images/s, and that as a share of the float32 ceiling (a large float32 matmul
timed in this run, divided by ResNet-50's 7.7 GFLOP per image).
Fidelity to Keras: lowest embedding cosine and top-1 category agreement on
the same photos, and leave-one-out retrieval top-1/5/10 on --retrieval
(default ../shared/data/retrieval_food_groups) with each path's embeddings,
with the lowest, 1st-percentile and mean embedding cosine over those photos.
Prints a table and JSON, with this machine's CPU and its flags.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json, timed

ROOT = Path(__file__).resolve().parents[1]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


GFLOP_PER_IMAGE = 7.7  # ResNet-50 at 224x224, multiply-adds counted as two operations


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def image_files(folder: Path) -> list[Path]:
    from indexer.loader import supported_extensions

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in supported_extensions())


def load_pixels(files: list[Path]) -> tuple[np.ndarray, list[Path]]:
    from concurrent.futures import ThreadPoolExecutor

    from indexer.loader import load_image

    def load(path):
        try:
            return path, load_image(path)[0]
        except Exception:
            return path, None

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        loaded = [(p, px) for p, px in pool.map(load, files) if px is not None]
    return np.stack([px for _, px in loaded]), [p for p, _ in loaded]


def onnx_paths(net, threads: int) -> dict:
    """onnxruntime float32 and dynamic int8, when its converter and runtime are installed."""
    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        print(f"onnxruntime paths skipped: {exc}", file=sys.stderr)
        return {}
    folder = Path(tempfile.mkdtemp(prefix="cbir-onnx-"))
    spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="x"),)
    tf2onnx.convert.from_function(tf.function(lambda x: net(x, training=False)), input_signature=spec, opset=17,
                                  output_path=str(folder / "f32.onnx"))
    quantize_dynamic(str(folder / "f32.onnx"), str(folder / "int8.onnx"), weight_type=QuantType.QInt8)
    paths = {}
    for name, file in (("onnxruntime-float32", "f32.onnx"), ("onnxruntime-dynamic-int8", "int8.onnx")):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(folder / file), options, providers=["CPUExecutionProvider"])
        paths[name] = lambda x, s=session: s.run(None, {s.get_inputs()[0].name: x})
    return paths


def engine_paths(threads: int) -> dict:
    """Every engine cbir can run on this machine (its measured candidates), from cbir's own exports."""
    from indexer.engines.build import build_engine
    from indexer.engines.measure import Measurer
    from indexer.engines.table import KERAS
    from indexer.model import resolve_model
    from indexer.weights import ensure_weights

    ref = resolve_model("default")
    measurer = Measurer(ref, ensure_weights(None), threads)
    profile = measurer.read() or measurer.measure()
    paths = {}
    for name, verdict in profile.verdicts.items():
        if name == KERAS or verdict.error:
            continue
        label = name + (" (auto: bulk)" if profile.bulk and profile.bulk.engine == name else "")
        paths[label] = build_engine(name, ref, measurer.trunk, measurer.weights, threads).raw_outputs
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "gallery")
    parser.add_argument("--retrieval", type=Path, default=ROOT.parent / "shared" / "data" / "retrieval_food_groups")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.images.is_dir():
        args.images = ROOT / "examples" / "photos"

    import tensorflow as tf

    from indexer.engines.fidelity import compare
    from indexer.engines.litert_engine import LiteNet, export_tflite
    from indexer.engines.load import load_embedder
    from indexer.resnet import preprocess
    from training.retrieval_metrics import leave_one_out

    files = image_files(args.images)
    step = max(1, len(files) // (args.count + 32))
    picked = files[::step]
    photos, _ = load_pixels(picked[: args.count])
    calibration, _ = load_pixels(picked[args.count : args.count + 32])
    x = preprocess(photos)
    peak = matmul_peak_gflops()
    ceiling = peak / GFLOP_PER_IMAGE
    embedder = load_embedder(None, "default", runtime="keras-float32")
    net = embedder.net
    xla = tf.function(lambda batch: net(batch, training=False), jit_compile=True)

    paths = {
        "keras": embedder.raw_outputs,
        "keras-xla": lambda b: [o.numpy() for o in xla(tf.constant(b))],
    }
    for kind in ("float16", "dynamic-int8"):
        paths[f"litert-{kind} (not a cbir engine)"] = LiteNet(export_tflite(net, kind), args.threads)
    paths["litert-full-int8 (not a cbir engine)"] = LiteNet(export_tflite(net, "dynamic-int8", preprocess(calibration)),
                                                             args.threads)
    paths.update(onnx_paths(net, args.threads))
    paths.update(engine_paths(args.threads))

    batches = [x[i : i + args.batch] for i in range(0, len(x) - len(x) % args.batch, args.batch)]
    outputs = {name: [np.concatenate(o) for o in zip(*[run(b) for b in batches], strict=True)]
               for name, run in paths.items()}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.runs):
        for name, run in paths.items():
            rates[name].append(len(batches) * args.batch / timed(lambda run=run: [run(b) for b in batches]))
        print(json.dumps({k: round(v[-1], 1) for k, v in rates.items()}), file=sys.stderr, flush=True)

    retrieval, food_fidelity = {}, {}
    if args.retrieval.is_dir():
        # The food photos also measure fidelity on many photos: none of them calibrated an int8 path.
        food, food_files = load_pixels(image_files(args.retrieval))
        labels = [p.relative_to(args.retrieval).parts[0] for p in food_files]
        xf = preprocess(food)
        food_outputs = {}
        for name, run in paths.items():
            food_outputs[name] = [np.concatenate(o) for o in zip(
                *[run(xf[i : i + args.batch]) for i in range(0, len(xf), args.batch)], strict=True)]
            feats = food_outputs[name][0] / np.linalg.norm(food_outputs[name][0], axis=1, keepdims=True)
            retrieval[name] = leave_one_out(feats, labels).as_dict()
            food_fidelity[name] = compare(food_outputs["keras"], food_outputs[name])
            print(json.dumps({name: retrieval[name]}), file=sys.stderr, flush=True)

    rows = []
    for name in paths:
        fidelity = compare(outputs["keras"], outputs[name])
        median = statistics.median(rates[name])
        rows.append({
            "path": name, "images_per_s_median": round(median, 2), "images_per_s_min": round(min(rates[name]), 2),
            "images_per_s_max": round(max(rates[name]), 2), "share_of_float32_ceiling": round(median / ceiling, 3),
            "min_cosine_to_keras": fidelity["min_cosine"], "category_agreement": fidelity["top1_agreement"][-1],
            "imagenet_top1_agreement": fidelity["top1_agreement"][0], "retrieval": retrieval.get(name),
            "food_photos": (food_fidelity.get(name) or {}).get("images"),
            "food_min_cosine_to_keras": (food_fidelity.get(name) or {}).get("min_cosine"),
            "food_p1_cosine_to_keras": (food_fidelity.get(name) or {}).get("p1_cosine"),
            "food_mean_cosine_to_keras": (food_fidelity.get(name) or {}).get("mean_cosine"),
        })
    print(f"{len(batches) * args.batch} photos from {args.images}, batch {args.batch}, {args.threads} threads, "
          f"{args.runs} runs; float32 matmul peak {peak:.0f} GFLOP/s = ceiling {ceiling:.1f} images/s")
    print(f"{'path':<26}{'img/s':>7}{'min-max':>13}{'of peak':>8}{'min cos':>8}{'cat':>6}"
          f"{'top1':>7}{'top5':>7}{'top10':>7}{'food min':>9}{'food p1':>8}")
    for r in rows:
        ret = r["retrieval"] or {}
        print(f"{r['path']:<26}{r['images_per_s_median']:>7.1f}{r['images_per_s_min']:>6.1f}-"
              f"{r['images_per_s_max']:<6.1f}{r['share_of_float32_ceiling']:>8.2f}{r['min_cosine_to_keras']:>8.4f}"
              f"{r['category_agreement']:>6.2f}" + "".join(f"{ret.get(k, float('nan')):>7.3f}"
                                                      for k in ("top1", "top5", "top10"))
              + f"{r['food_min_cosine_to_keras'] or float('nan'):>9.4f}"
              + f"{r['food_p1_cosine_to_keras'] or float('nan'):>8.4f}")
    result = {"images": len(batches) * args.batch, "batch": args.batch, "threads": args.threads, "runs": args.runs,
              "peak_gflops": round(peak, 1), "ceiling_images_per_s": round(ceiling, 2), "paths": rows}
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
