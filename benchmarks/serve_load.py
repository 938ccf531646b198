"""Load on `cbir serve`: concurrent clients searching by upload (and by id) for a fixed time, on loopback.

    python -m benchmarks.serve_load [--photos DIR] [--queries DIR] [--clients 1 8] [--seconds 30] [--json OUT]
    python -m benchmarks.serve_load --catalog 100000 [--json OUT]

Indexes --photos (default: the development gallery, ../shared/data/gallery) into a temporary index, starts
a real `cbir serve` process on 127.0.0.1 with a free port, and, for each client count, runs that many
clients (threads with their own keep-alive connection) posting photos from --queries (default:
../shared/data/other, photos that are not in the index) round-robin for --seconds. Reports per client
count: requests, requests/s, p50/p95/p99 latency and errors (any status but 200, or a failed connection),
then the same for "more like this" by image id. Everything stays on loopback. Prints a table and JSON.
With --catalog N, instead: the library pages and search by upload over an N-image catalog
(benchmarks.serve_catalog).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}


def photos_in(folder: Path, limit: int | None = None) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    return found[:limit] if limit else found


def start_server(index: Path, env: dict) -> tuple[subprocess.Popen, str, Path]:
    log_path = Path(tempfile.mkstemp(prefix="cbir-serve-", suffix=".log")[1])
    log = open(log_path, "w+")
    server = subprocess.Popen([sys.executable, "-m", "cbir", "serve", "--index", str(index), "--host", "127.0.0.1",
                               "--port", "0"], env=env, stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", log_path.read_text())
        if found:
            return server, found.group(1), log_path
        time.sleep(0.2)
    raise SystemExit(f"cbir serve did not start:\n{log_path.read_text()}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_load(url: str, clients: int, seconds: float, request) -> dict:
    """``clients`` threads calling ``request(http, n)`` until the time is up; latencies in ms."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            n = number
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    response = request(http, n)
                    ok = response.status_code == 200
                    problem = None if ok else f"{response.status_code}: {response.text[:200]}"
                except Exception as exc:  # a refused or dropped connection counts as an error
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append(elapsed)
                n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    done = len(latencies)
    return {"clients": clients, "seconds": round(wall, 1), "requests": done + len(errors), "errors": len(errors),
            "first_errors": errors[:3], "requests_per_s": round(done / wall, 2),
            "p50_ms": round(percentile(latencies, 50), 1) if done else None,
            "p95_ms": round(percentile(latencies, 95), 1) if done else None,
            "p99_ms": round(percentile(latencies, 99), 1) if done else None,
            "mean_ms": round(statistics.fmean(latencies), 1) if done else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "gallery", help="Photos to index and serve.")
    parser.add_argument("--queries", type=Path, default=SHARED / "other", help="Photos to search with (uploads).")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="Concurrent clients, one run each.")
    parser.add_argument("--seconds", type=float, default=30, help="How long each run lasts.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON result here.")
    parser.add_argument("--catalog", type=int, default=0,
                        help="Time the library pages and upload search over an N-image catalog instead.")
    args = parser.parse_args()
    if args.catalog:
        from benchmarks.serve_catalog import catalog_run
        from cbir.config import cache_dir

        work = Path(tempfile.mkdtemp(prefix="cbir-serve-catalog-"))
        env = {**os.environ, "CBIR_CACHE": str(cache_dir()), "CBIR_HOME": str(work / "home"),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = catalog_run(photos_in(args.photos, 300), [p.read_bytes() for p in photos_in(args.queries, 50)],
                             args.catalog, work, env)
        for name, row in result.items():
            if isinstance(row, dict):
                print(f"{name:20s} p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms", file=sys.stderr)
        emit_json(result, args.json)
        return
    if max(args.clients) > 64:
        raise SystemExit("at most 64 clients: this is a load check on one machine, not a stress test")
    indexed = photos_in(args.photos)
    queries = [p.read_bytes() for p in photos_in(args.queries, 200)]
    if not indexed or not queries:
        raise SystemExit(f"need photos in {args.photos} and {args.queries}")

    work = Path(tempfile.mkdtemp(prefix="cbir-serve-load-"))
    from cbir.config import cache_dir

    # The user's cache (weights, model exports) stays in use; only the index is new.
    env = {**os.environ, "CBIR_CACHE": str(cache_dir()), "CBIR_HOME": str(work / "home"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    index = work / "index"
    subprocess.run([sys.executable, "-m", "cbir", "index", str(args.photos), "--index", str(index), "-q"], env=env,
                   check=True)
    server, url, log = start_server(index, env)
    try:
        import httpx

        with httpx.Client(base_url=url, timeout=60) as http:
            ids = [image["id"] for image in http.get("/api/images", params={"limit": 500}).json()["images"]]
            status = http.get("/api/status").json()
            for n in range(5):  # warm: the first calls build what the server keeps
                http.post("/api/query", files={"image": ("q.jpg", queries[n % len(queries)])}, data={"k": "10"})
            while True:  # the background thumbnails at idle priority would still take CPU from the queries
                page = http.get("/status", headers={"Accept": "text/html"}).text
                if "all made" in page or re.search(r"(\d+) of \1 made", page):
                    break
                time.sleep(1)

        def upload(http, n):
            return http.post("/api/query", files={"image": ("q.jpg", queries[n % len(queries)])}, data={"k": "10"})

        def by_id(http, n):
            return http.get("/api/query", params={"id": ids[n % len(ids)], "k": 10})

        rows = []
        for kind, request in (("upload", upload), ("by id", by_id)):
            for clients in args.clients:
                row = {"query": kind, **run_load(url, clients, args.seconds, request)}
                rows.append(row)
                print(f"{kind:7s} {clients:3d} clients: {row['requests']:6d} requests, {row['requests_per_s']:7.1f}/s, "
                      f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
                      f"{row['errors']} errors", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"indexed_images": status["images"], "indexed_from": str(args.photos), "queries_from": str(args.queries),
              "query_photos": len(queries), "search_index": status["search_index"], "cpus": os.cpu_count(),
              "rows": rows,
              "target": "upload query p50 under 150 ms with 1 client; no failed request with 8 clients"}
    emit_json(result, args.json)
    log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
