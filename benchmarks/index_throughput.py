"""End-to-end `cbir index` against the seeds' way, both timed as whole processes, same run.

    python -m benchmarks.index_throughput DIR [DIR ...] [--runs 3] [--engines] [--json OUT] [--cbir-args "..."]

cbir's way: `python -m cbir index DIR` into a fresh temporary index, from the
process's start to its exit (imports, loading the engine, walking, reading,
hashing, draft-mode decoding on threads while the model embeds, SQLite and
FAISS writes). The engines' one-time measurement is made before the timed runs
and reused from the cache, as it is on a user's second run; with ``--engines``
every faithful engine is also forced with `--runtime` in the same runs, to
show how `auto` compares with the fastest of them. The seeds'
way, also a whole process (``--seeds DIR``): import Keras, build ResNet-50 and
load its weights, then for each file a full Pillow decode, RGB conversion and
resize to 224x224, `keras.Model.predict` on batches of 32, FAISS `add`, and
the index written to a file. The files are read once beforehand so that
neither side pays for the disk. Each side also reports its own loop's rate
(start-up excluded), and their ratio is printed beside the whole-process one.
Runs alternate between the two ways; prints medians, min-max and the ratio
per folder, then JSON.

For camera-sized files, make a library with `python -m benchmarks.camera_library OUT`.
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


def image_files(folder: Path) -> list[Path]:
    from indexer.loader import supported_extensions

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in supported_extensions())


def _environment(home: str) -> dict[str, str]:
    from cbir.config import cache_dir
    from indexer.weights import ensure_weights

    return {**os.environ, "CBIR_HOME": home, "CBIR_CACHE": str(cache_dir()),
            "CBIR_WEIGHTS": os.environ.get("CBIR_WEIGHTS") or str(ensure_weights().path)}


def cbir_way(folder: Path, extra: list[str]) -> tuple[float, int, float]:
    """(wall seconds of the whole process, images added, seconds cbir reports for its own run)."""
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as home:
        env = _environment(home)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--json", "-q", *extra], env=env,
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        summary = json.loads(proc.stdout)
        return wall, summary["added"], summary["seconds"]


def seeds_way(folder: Path) -> tuple[float, int, float]:
    """(wall seconds of the whole process, images embedded, seconds of its loop over the files)."""
    with tempfile.TemporaryDirectory(prefix="seeds-bench-") as home:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.index_throughput", "--seeds", str(folder)],
                              env=_environment(home), cwd=ROOT, capture_output=True, text=True, check=True)
        embedded, own = proc.stdout.split()[-2:]
        return time.perf_counter() - started, int(embedded), float(own)


def run_seeds(folder: Path, batch: int = 32) -> tuple[int, float]:
    """The seeds' way, start to finish: (images embedded, seconds of the loop over the files)."""
    import faiss
    import numpy as np
    from PIL import Image

    from indexer.resnet import build_resnet50, imagenet_trunk, preprocess

    full = build_resnet50()
    full.load_weights(os.environ["CBIR_WEIGHTS"])
    model = imagenet_trunk(full)
    files = image_files(folder)
    started = time.perf_counter()
    index = faiss.IndexFlatIP(2048)
    pending: list = []
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
            pending = []
    faiss.write_index(index, str(Path(os.environ["CBIR_HOME"]) / "seeds.faiss"))
    return index.ntotal, time.perf_counter() - started


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def faithful_engines() -> list[str]:
    """The engines `--runtime` can force here that are faithful (this machine's measured profile)."""
    from indexer.engines.machine import inference_threads
    from indexer.engines.measure import Measurer
    from indexer.model import resolve_model
    from indexer.weights import ensure_weights

    measurer = Measurer(resolve_model("default"), ensure_weights(None), inference_threads())
    profile = measurer.read() or measurer.measure()
    return [name for name, v in profile.verdicts.items() if v.faithful and not v.error]


def measure(folder: Path, runs: int, extra: list[str], engines: list[str]) -> dict:
    files = image_files(folder)
    for path in files:  # into the page cache, for every side alike
        path.read_bytes()
    ways = {"auto": extra, **{name: [*extra, "--runtime", name] for name in engines}}
    rates: dict[str, list[float]] = {way: [] for way in ways}
    own: dict[str, list[float]] = {way: [] for way in ways}
    seeds_rates, seeds_own = [], []
    for _ in range(runs):
        for way, options in ways.items():
            wall, added, seconds = cbir_way(folder, options)
            rates[way].append(added / wall)
            own[way].append(added / seconds)
        wall, embedded, seconds = seeds_way(folder)
        seeds_rates.append(embedded / wall)
        seeds_own.append(embedded / seconds)
        print(f"{folder}: " + ", ".join(f"{w} {r[-1]:.2f}" for w, r in rates.items())
              + f", seeds {seeds_rates[-1]:.2f} images/s", file=sys.stderr)
    result = {
        "folder": str(folder), "files": len(files), "images": added,
        "mean_megapixels": round(statistics.mean(_megapixels(p) for p in files), 2),
        "mean_file_mb": round(statistics.mean(p.stat().st_size for p in files) / 1e6, 2),
        "cbir_images_per_s": _stats(rates["auto"]), "cbir_images_per_s_own_run": _stats(own["auto"]),
        "seeds_images_per_s": _stats(seeds_rates), "seeds_images_per_s_own_run": _stats(seeds_own),
        "engines": {way: {"images_per_s": _stats(rates[way]), "images_per_s_own_run": _stats(own[way])}
                    for way in ways if way != "auto"},
    }
    result["ratio"] = round(statistics.median(rates["auto"]) / statistics.median(seeds_rates), 2)
    # The same without either side's start-up (imports, model loading): the loops alone.
    result["ratio_own_runs"] = round(statistics.median(own["auto"]) / statistics.median(seeds_own), 2)
    if engines:
        best = max(engines, key=lambda w: statistics.median(rates[w]))
        result["best_forced"] = best
        result["auto_of_best_forced"] = round(statistics.median(rates["auto"]) / statistics.median(rates[best]), 3)
    return result


def _megapixels(path: Path) -> float:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height / 1e6
    except Exception:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="*")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cbir-args", default="", help="Extra `cbir index` options, e.g. \"--workers 4\".")
    parser.add_argument("--engines", action="store_true",
                        help="Also time `cbir index --runtime ENGINE` for every faithful engine on this machine.")
    parser.add_argument("--seeds", type=Path, default=None, help=argparse.SUPPRESS)  # the seeds' process
    args = parser.parse_args()
    if args.seeds is not None:
        embedded, seconds = run_seeds(args.seeds)
        print(embedded, round(seconds, 3))
        return
    if not args.folders:
        parser.error("give at least one folder of images")
    extra = args.cbir_args.split()
    engines = faithful_engines()  # the engines are measured once, outside the timed runs
    results = [measure(folder, args.runs, extra, engines if args.engines else []) for folder in args.folders]
    for r in results:
        print(f"{r['folder']}: {r['files']} files, {r['mean_megapixels']} MP and {r['mean_file_mb']} MB on average, "
              f"{args.runs} runs each")
        for key in ("cbir", "seeds"):
            s = r[f"{key}_images_per_s"]
            print(f"  {key:<6} {s['median']:>7.2f} images/s (min {s['min']:.2f}, max {s['max']:.2f})")
        for name, e in r["engines"].items():
            print(f"  --runtime {name:<20} {e['images_per_s']['median']:>7.2f} images/s")
        print(f"  ratio  {r['ratio']:.2f}x (without start-up on either side: {r['ratio_own_runs']:.2f}x)")
        if "best_forced" in r:
            print(f"  auto runs at {100 * r['auto_of_best_forced']:.0f}% of the fastest forced engine "
                  f"({r['best_forced']})")
    emit_json({"runs": args.runs, "cbir_args": extra, "how": "whole processes, wall clock", "folders": results},
              args.json)


if __name__ == "__main__":
    main()
