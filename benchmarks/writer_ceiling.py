"""How many images per second the single writer can commit: the ceiling for `cbir index --ray`.

    python -m benchmarks.writer_ceiling [--images 50000] [--batch 32] [--json OUT]

On a cluster the driver does no decoding or embedding; per image it only looks
the path up, decides (new, changed, rename, copy), stores the row, the float16
vector and the tags, and commits each returned chunk whole; at the end it
publishes the FAISS index. This drives exactly that code (``IndexRun``'s
deciding and storing, the real SQLite catalog and FAISS build) with synthetic
unit vectors in chunks of --batch, as Ray results arrive, and times it: the
commit path's images/s, and the FAISS publish at the end (built from scratch
for a first bulk load, then patched for a second, incremental one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from index_store.writer import IndexStore, fixed_claim
    from indexer.engines.load import load_embedder
    from indexer.pipeline import IndexRun, _Job
    from indexer.walker import FileEntry

    embedder = load_embedder(runtime="lite", bulk=False)  # only its head and tagger are used
    rng = np.random.default_rng(0)
    result: dict = {"images": args.images, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        for phase, start in (("first_load", 0), ("second_load", args.images)):
            with IndexStore.open(index_dir, fixed_claim(embedder.model_id, embedder.dim)) as store:
                run = IndexRun(store, embedder)
                run._run = store.begin_run(f"/photos/{phase}")
                started = time.perf_counter()
                for first in range(start, start + args.images, args.batch):
                    count = min(args.batch, start + args.images - first)
                    vectors = rng.standard_normal((count, embedder.dim), dtype=np.float32)
                    norms = np.linalg.norm(vectors, axis=1)
                    vectors /= norms[:, None]
                    jobs = []
                    for i in range(first, first + count):
                        path = f"/photos/{phase}/{i // 1000:04d}/IMG_{i:07d}.jpg"
                        store.row_by_path(path)
                        job = _Job(FileEntry(path, 3_000_000 + i, 1_700_000_000_000_000_000 + i), None,
                                   digest=f"{i:032x}")
                        if not run._relinked(job):
                            jobs.append(job)
                    probs = embedder.categorizer.probabilities(vectors) if embedder.categorizer else None
                    run._store_embedded(jobs, vectors, probs, norms)
                commit_s = time.perf_counter() - started
                started = time.perf_counter()
                store.finish()
                publish_s = time.perf_counter() - started
                result[phase] = {"commit_images_per_s": round(args.images / commit_s, 1),
                                 "commit_s": round(commit_s, 2), "publish_s": round(publish_s, 2),
                                 "index": store.index_plan().description, "patched": store.patched}
                print(phase, result[phase], file=sys.stderr)
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
