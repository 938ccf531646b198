"""`cbir serve` over a 10^5-image library: the timeline's first page, a jump to a month, the next screenful
and a search by upload, one client, on loopback. Used by ``python -m benchmarks.serve_load --catalog N``.

The library: a few hundred real photos indexed by `cbir index` (real vectors, facts and thumbnails), then
N catalog rows made from them, each a link to one of the real files with its own date (spread evenly over
ten years) so that the timeline has 120 months to jump between. The pages read only the catalog; the
search index holds N vectors (the real ones, repeated).
"""

from __future__ import annotations

import random
import time
from pathlib import Path


def build(source: Path, out: Path, links: Path, size: int, seed: int = 0) -> Path:
    from benchmarks.common import index_contents
    from index_store.writer import IndexStore

    rng = random.Random(seed)
    ids, matrix, rows, claim = index_contents(source)
    links.mkdir(parents=True, exist_ok=True)
    start = time.mktime((2015, 1, 1, 0, 0, 0, 0, 0, -1))
    span = 10 * 365.25 * 86400
    with IndexStore.open(out, claim) as store:
        run = store.begin_run(str(links))
        for n in range(size):
            k = n % len(ids)
            row = rows[ids[k]]
            link = links / f"{n // 1000:03d}" / f"{n:06d}{Path(row.path).suffix}"
            link.parent.mkdir(exist_ok=True)
            if not link.exists():
                link.symlink_to(row.path)
            image_id = store.add(str(link), row.size, row.mtime_ns, row.hash, matrix[k], run, row.category,
                                 row.category_probs)
            taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start + rng.random() * span))
            store.set_when(image_id, taken, "exif", None, None, None, None, None)
            if n % 5000 == 4999:
                store.commit()
        store.commit()
        store.finish()
    return out


def measure(url: str, queries: list[bytes], rounds: int = 40, seed: int = 0) -> dict:
    import httpx

    from benchmarks.serve_load import percentile

    rng = random.Random(seed)
    out: dict = {}
    with httpx.Client(base_url=url, timeout=120, follow_redirects=True) as http:
        first = http.get("/")
        months = sorted(set(__import__("re").findall(r'data-month="(\d{4}-\d{2})"', first.text)))
        total_pages = max(2, int(__import__("re").search(r"page 1 of (\d+)", first.text).group(1)))

        def timed(name: str, request) -> None:
            times = []
            for n in range(rounds):
                started = time.perf_counter()
                response = request(n)
                response.raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
            out[name] = {"requests": rounds, "p50_ms": round(percentile(times, 50), 1),
                         "p95_ms": round(percentile(times, 95), 1)}

        timed("library first page", lambda n: http.get("/"))
        timed("jump to a month", lambda n: http.get("/", params={"month": rng.choice(months)}))
        timed("next screenful", lambda n: http.get("/", params={"page": rng.randrange(2, total_pages),
                                                                "part": "true"}))
        timed("search by upload", lambda n: http.post("/search", files={"image": ("q.jpg", queries[n % len(queries)])},
                                                      data={"k": "24"}, headers={"Origin": url.rstrip("/")}))
        out["months"] = len(months)
    return out


def catalog_run(photos: list[Path], queries: list[bytes], size: int, work: Path, env: dict) -> dict:
    import subprocess
    import sys

    from benchmarks.serve_load import start_server

    source = work / "source-index"
    folder = work / "source-photos"
    folder.mkdir(parents=True, exist_ok=True)
    for n, photo in enumerate(photos):
        target = folder / f"{n:04d}{photo.suffix.lower()}"
        if not target.exists():
            target.write_bytes(photo.read_bytes())
    subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--index", str(source), "-q"], env=env,
                   check=True)
    started = time.monotonic()
    index = build(source, work / f"catalog-{size}", work / "links", size)
    built = time.monotonic() - started
    server, url, log = start_server(index, env)
    log.unlink(missing_ok=True)  # its lines are not needed: failures raise
    try:
        found = measure(url, queries)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"images": size, "real_photos": len(photos), "build_seconds": round(built, 1), **found,
            "target": "first page, month jump p95 <= 300 ms; search by upload p95 <= 400 ms; 1 client, 2 cores"}
