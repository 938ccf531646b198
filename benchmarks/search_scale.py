"""FAISS search at 10^4..10^6 vectors: the indexes cbir builds, against exact search.

    python -m benchmarks.search_scale [--sizes 10000 100000 1000000] [--queries 100] [--json OUT]

Vectors are synthetic and seeded but shaped like image embeddings: unit
length, 2048-d, drawn around 1,000 cluster centres (uniform random vectors
would make every approximate index look worse than it is on real data). They
are generated chunk by chunk and never held all at once, like cbir's own
build from the catalog. For each size and index kind (built by
``index_store.faiss_index``, exactly as ``cbir index`` builds it): build time,
bytes per vector, latency of one query (median over the queries) and of one
batch of all queries, and recall@10 against exact search (computed by brute
force alongside). The on-disk IVF-PQ index (``ivfpq``) is reopened from its
files as a query process would, and its shortlists re-ranked from float16
vectors in a memory-mapped file (in cbir, the catalog's); its row adds the
memory resident at query time and counts bytes per vector on disk. HNSW is
skipped at 10^6 (about 8.5 GB and many minutes to build on 2 cores); say
--hnsw-max to change that. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json
from index_store.faiss_index import build_index, estimate_bytes, plan_index

ROOT = Path(__file__).resolve().parents[1]


DIM = 2048
CHUNK = 25_000


def centres(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1000, DIM), dtype=np.float32) / np.sqrt(DIM)


def chunk_vectors(index: int, size: int, seed: int, mids: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    x = mids[rng.integers(0, len(mids), size)] + 0.6 * rng.standard_normal((size, DIM), dtype=np.float32) / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(n: int, mids: np.ndarray):
    for i, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        yield np.arange(start, start + m, dtype=np.int64), chunk_vectors(i, m, 1, mids)


def exact_top10(n: int, queries: np.ndarray, mids: np.ndarray) -> tuple[np.ndarray, float]:
    """Brute-force top 10 over all chunks, and the seconds it took."""
    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 10), np.int64)
    seconds = 0.0
    for ids, x in chunks(n, mids):
        started = time.perf_counter()
        scores = queries @ x.T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argsort(-s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
        seconds += time.perf_counter() - started
    return best_i, seconds


def time_queries(index, queries: np.ndarray, truth: np.ndarray) -> tuple[list[float], float, float]:
    """Seconds of each query alone, seconds of all in one batch, and recall@10 against ``truth``."""
    single = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], 10)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    _, ids = index.search(queries, 10)
    batch = time.perf_counter() - t
    return single, batch, float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)]))


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def ondisk_row(plan, n: int, mids: np.ndarray, queries: np.ndarray, truth: np.ndarray, training_sample,
               folder: Path | None, shortlists: tuple[int, ...] = (100, 300, 1000, 3000)) -> dict:
    """Build the on-disk IVF-PQ index as cbir does, then reopen it memory-mapped, as a query process would,
    with the shortlists re-ranked from float16 vectors on disk (in cbir, the catalog's)."""
    import tempfile

    from index_store.faiss_index import estimate_disk_bytes, tune, write_index
    from index_store.ondisk import Reranked, open_ondisk

    with tempfile.TemporaryDirectory(dir=folder, prefix="cbir-ivfpq-") as tmp:
        stored = np.lib.format.open_memmap(Path(tmp) / "vectors.f16.npy", mode="w+", dtype="<f2", shape=(n, DIM))

        def chunks_kept():
            for ids, x in chunks(n, mids):
                stored[ids] = x
                yield ids, x

        header, data = Path(tmp) / "vectors.faiss", Path(tmp) / "vectors.1.ivfdata"
        started = time.perf_counter()
        write_index(build_index(plan, DIM, chunks_kept, training_sample, data), header)
        build = time.perf_counter() - started
        stored.flush()
        before = resident_bytes()
        index = open_ondisk(header, data)
        tune(index, plan)
        searcher = Reranked(index, lambda ids: {i: np.asarray(stored[i], np.float32) for i in ids},
                            shortlist=plan.shortlist)
        by_shortlist = {}
        for shortlist in shortlists:
            trial = Reranked(index, searcher.vectors_of, shortlist=shortlist)
            t = time.perf_counter()
            _, ids = trial.search(queries, 10)
            hits = [len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)]
            by_shortlist[shortlist] = {"recall_at_10": round(float(np.mean(hits)), 4),
                                       "query_ms_mean": round((time.perf_counter() - t) / len(queries) * 1e3, 2)}
            print(json.dumps({"n": n, "shortlist": shortlist, **by_shortlist[shortlist]}), file=sys.stderr, flush=True)
        single, batch, recall = time_queries(searcher, queries, truth)
        resident = resident_bytes() - before
        on_disk = header.stat().st_size + data.stat().st_size
        return {"n": n, "index": plan.description, "kind": "ivfpq", "build_s": round(build, 2),
                "bytes_per_vector": round(on_disk / n, 1),
                "estimated_bytes_per_vector": round((estimate_bytes(plan, n, DIM) + estimate_disk_bytes(plan, n)) / n,
                                                    1),
                "resident_mb_at_query_time": round(resident / 1e6, 1),
                "query_ms_median": round(statistics.median(single) * 1e3, 3),
                "query_ms_max": round(max(single) * 1e3, 3),
                "batch_queries": len(queries), "batch_ms": round(batch * 1e3, 1),
                "recall_at_10": round(recall, 4), "shortlist": searcher.shortlist, "by_shortlist": by_shortlist}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw", "ivfpq"])
    parser.add_argument("--hnsw-max", type=int, default=100_000)
    parser.add_argument("--flat-max", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--ondisk-dir", type=Path, default=None,
                        help="Where the ivfpq rows write their files (default: the temporary folder).")
    args = parser.parse_args()

    import faiss

    mids = centres()
    rows = []
    for n in args.sizes:
        queries = chunk_vectors(10_000, args.queries, 2, mids)
        truth, brute_s = exact_top10(n, queries, mids)
        print(json.dumps({"n": n, "brute_force_exact_batch_s": round(brute_s, 2)}), file=sys.stderr, flush=True)
        sample_rng = np.random.default_rng(3)

        def training_sample(m: int, n=n, sample_rng=sample_rng) -> np.ndarray:
            # Like the catalog's random sample: m vectors spread over the whole collection.
            per = max(1, m // max(1, -(-n // CHUNK)))
            return np.concatenate([x[sample_rng.choice(len(x), min(per, len(x)), replace=False)]
                                   for _, x in chunks(n, mids)])

        for kind in args.kinds:
            if (kind == "hnsw" and n > args.hnsw_max) or (kind == "flat" and n > args.flat_max):
                continue
            plan = plan_index(kind, n)
            if kind == "ivfpq":
                rows.append(ondisk_row(plan, n, mids, queries, truth, training_sample, args.ondisk_dir))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                continue
            started = time.perf_counter()
            index = build_index(plan, DIM, lambda n=n: chunks(n, mids), training_sample)
            build = time.perf_counter() - started
            single, batch, recall = time_queries(index, queries, truth)
            size = faiss.serialize_index(index).nbytes
            row = {"n": n, "index": plan.description, "kind": kind, "build_s": round(build, 2),
                   "bytes_per_vector": round(size / n, 1),
                   "estimated_bytes_per_vector": round(estimate_bytes(plan, n, DIM) / n, 1),
                   "query_ms_median": round(statistics.median(single) * 1e3, 3),
                   "query_ms_max": round(max(single) * 1e3, 3),
                   "batch_queries": len(queries), "batch_ms": round(batch * 1e3, 1),
                   "recall_at_10": round(recall, 4)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            del index
    print(f"{'n':>9} {'index':<28}{'build s':>9}{'B/vec':>8}{'1 query ms':>11}{'batch ms':>10}{'recall@10':>10}")
    for r in rows:
        print(f"{r['n']:>9} {r['index']:<28}{r['build_s']:>9.1f}{r['bytes_per_vector']:>8.0f}"
              f"{r['query_ms_median']:>11.2f}{r['batch_ms']:>10.1f}{r['recall_at_10']:>10.3f}")
    emit_json(rows, args.json)


if __name__ == "__main__":
    main()
