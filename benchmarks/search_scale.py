"""FAISS search at 10^4..10^6 vectors: exact inner product against approximate indexes.

    python benchmarks/search_scale.py [--sizes 10000 100000 1000000] [--queries 200] [--json OUT]

Vectors are synthetic and seeded but shaped like image embeddings: unit
length, 2048-d, drawn around 1,000 cluster centres (uniform random vectors
would make every approximate index look worse than it is on real data). For
each size and index: build time, bytes per vector, latency of 1 query (median
of --queries) and of a batch of --queries, and recall@10 against exact search.
Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DIM = 2048


def make_vectors(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        chunk = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, DIM), dtype=np.float32) / np.sqrt(DIM)
        out[start : start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def candidates(n: int) -> dict[str, str]:
    nlist = max(64, int(4 * np.sqrt(n)))
    return {
        "exact (Flat IP)": "Flat",
        "exact float16 (SQfp16)": "SQfp16",
        "HNSW32": "HNSW32",
        f"IVF{nlist},SQ8": f"IVF{nlist},SQ8",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import faiss

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, DIM), dtype=np.float32) / np.sqrt(DIM)
    rows = []
    for n in args.sizes:
        data = make_vectors(n, 1, centres)
        queries = make_vectors(args.queries, 2, centres)
        truth = None
        for name, spec in candidates(n).items():
            index = faiss.index_factory(DIM, spec, faiss.METRIC_INNER_PRODUCT)
            started = time.perf_counter()
            if not index.is_trained:
                index.train(data[rng.choice(n, min(n, 40_000), replace=False)])
            index.add(data)
            build = time.perf_counter() - started
            for param, value in (("nprobe", 32), ("efSearch", 128)):
                try:
                    faiss.ParameterSpace().set_index_parameter(index, param, value)
                except Exception:
                    pass
            single = []
            for q in queries[: min(50, args.queries)]:
                t = time.perf_counter()
                index.search(q[None], 10)
                single.append(time.perf_counter() - t)
            t = time.perf_counter()
            _, ids = index.search(queries, 10)
            batch = time.perf_counter() - t
            if truth is None:
                truth = ids
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)]))
            size = faiss.serialize_index(index).nbytes
            row = {"n": n, "index": name, "factory": spec, "build_s": round(build, 2),
                   "bytes_per_vector": round(size / n, 1), "query_ms_median": round(statistics.median(single) * 1e3, 3),
                   f"batch_{args.queries}_ms": round(batch * 1e3, 1), "recall_at_10": round(recall, 4)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            del index
    print(f"{'n':>9} {'index':<30}{'build s':>9}{'B/vec':>9}{'1 query ms':>11}{'batch ms':>10}{'recall@10':>10}")
    for r in rows:
        print(f"{r['n']:>9} {r['index']:<30}{r['build_s']:>9.1f}{r['bytes_per_vector']:>9.0f}"
              f"{r['query_ms_median']:>11.2f}{r[f'batch_{args.queries}_ms']:>10.1f}{r['recall_at_10']:>10.3f}")
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
