"""Cold and warm `cbir query` on a large index: end to end, and where the time goes.

    python -m benchmarks.query_latency [--size 100000] [--runs 5] [--image PHOTO] [--json OUT]

Builds (once, cached under --work) a real cbir index of --size synthetic
clustered 2048-d vectors stamped with the default model's id, so the real
model, SQLite catalog and FAISS index answer a real photo. Then:
  cold: `cbir query PHOTO -k 10` in a new process, wall time of --runs runs,
        plus the `--timings` phase breakdown of the median run;
  warm: model and index loaded once, then the median over 100 queries of
        search + path lookup for one query vector, and of embedding one photo.
Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json, timed

ROOT = Path(__file__).resolve().parents[1]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


DIM = 2048


def build_index(index_dir: Path, size: int, model_id: str) -> float:
    from benchmarks.search_scale import centres, chunks
    from index_store.writer import IndexStore, fixed_claim

    started = time.perf_counter()
    with IndexStore.open(index_dir, fixed_claim(model_id, DIM, "default")) as store:
        run = store.begin_run("/synthetic")
        for ids, vectors in chunks(size, centres()):
            for i, v in zip(ids, vectors, strict=True):
                store.add(f"/synthetic/{i // 1000:04d}/{i:07d}.jpg", 1, 1, f"h{i}", v, run, "food", {"food": 1.0})
            store.commit()
        store.finish()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "photos" / "coffee.jpg")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cbir-query-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from cbir.config import cache_dir
    from cbir.search import Searcher
    from index_store.catalog import CatalogReader
    from index_store.manifest import read_manifest
    from indexer.engines.load import load_embedder
    from indexer.engines.measure import Measurer
    from indexer.loader import load_image
    from indexer.model import resolve_model
    from indexer.weights import ensure_weights

    measurer = Measurer(resolve_model("default"), ensure_weights(None), os.cpu_count() or 1)
    measurer.read() or measurer.measure()  # once per machine, as a user's first big job does
    embedder = load_embedder(None, "default", bulk=False)  # the engine a one-off query runs here
    index_dir = args.work / f"index-{args.size}"
    manifest = read_manifest(index_dir)
    build_s = None
    if not manifest or manifest.count != args.size or manifest.model_id != embedder.model_id:
        import shutil

        shutil.rmtree(index_dir, ignore_errors=True)
        index_dir.mkdir(parents=True)
        build_s = build_index(index_dir, args.size, embedder.model_id)
        manifest = read_manifest(index_dir)

    env = {**os.environ, "CBIR_CACHE": str(cache_dir())}
    command = [sys.executable, "-m", "cbir", "query", str(args.image), "-k", "10", "--index", str(index_dir),
               "--timings"]
    walls, breakdowns = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        phases = re.finditer(r"cbir:\s+([\d.]+) ms  (.+)", proc.stderr)
        breakdowns.append({m.group(2): float(m.group(1)) for m in phases})
    median_run = breakdowns[walls.index(sorted(walls)[len(walls) // 2])]
    python_start = statistics.median(
        [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(5)])

    reader = CatalogReader.open(index_dir)
    searcher = Searcher(reader)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((100, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    warm_search = [timed(lambda v=v: searcher.search(v, 10)) for v in vectors]
    pixels = load_image(args.image)[0][None]
    embedder.embed(pixels)
    warm_embed = [timed(lambda: embedder.embed(pixels)) for _ in range(20)]
    reader.close()

    result = {
        "size": args.size, "index": manifest.description, "faiss_file_mb": round(
            (index_dir / manifest.faiss_file).stat().st_size / 1e6, 1),
        "index_build_s": round(build_s, 1) if build_s else None, "runtime": embedder.runtime,
        "cold_query_s": {"median": round(statistics.median(walls), 3), "min": round(min(walls), 3),
                         "max": round(max(walls), 3), "runs": len(walls)},
        "python_start_s": round(python_start, 3),
        "cold_phases_ms": median_run,
        "warm_search_ms": {"median": round(statistics.median(warm_search) * 1e3, 3),
                           "max": round(max(warm_search) * 1e3, 3)},
        "warm_embed_one_photo_ms": round(statistics.median(warm_embed) * 1e3, 1),
    }
    print(f"{args.size} images, {manifest.description}, FAISS file {result['faiss_file_mb']} MB, "
          f"engine {embedder.runtime}")
    print(f"cold `cbir query` (new process): median {result['cold_query_s']['median']:.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f}); Python itself starts in {python_start:.2f} s")
    for phase, ms in median_run.items():
        print(f"  {ms:8.1f} ms  {phase}")
    print(f"warm search + path lookup: median {result['warm_search_ms']['median']:.2f} ms; "
          f"embedding one photo: {result['warm_embed_one_photo_ms']:.0f} ms")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
