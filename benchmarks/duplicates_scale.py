"""How long `cbir duplicates` takes on a large library: 10^4 real files, and a 10^5-image catalog.

Used by ``python -m benchmarks.duplicates --files N --catalog M``.

- ``real_library``: about N real files: every development photo (gallery, other, the extra photos) saved
  the 13 ways of ``benchmarks.duplicates.make_variants``, until there are N. They are indexed with
  `cbir index` (timed apart), then `cbir duplicates --json` runs in a new process, timed from start to end.
- ``replicated_catalog``: M images built from that real index: the catalog is copied M / N times, each
  copy's vectors turned by a random rotation of their space (so a copy's images are as alike among
  themselves as the real ones, and unrelated to every other copy's) and its contents renamed (so that
  exact copies stay within a copy). The pictures' stored facts are the real files' own. The candidate
  graph is then that of M / N real libraries side by side: the same work per image as on real files,
  at M images. `cbir duplicates --json` runs on it in a new process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SIDE = 2048  # sources larger than this are saved at this size first: the variants take minutes, not an hour


def real_library(shared: Path, extra: Path, out: Path, files: int, seed: int) -> Path:
    """About ``files`` real files under ``out``: development photos (at most ``SIDE`` pixels on their longest
    side), each saved 13 ways, on a process per core."""
    sources = sorted(p for folder in (shared / "gallery", shared / "other", extra) for p in folder.rglob("*")
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"))
    random.Random(seed).shuffle(sources)
    chosen = sources[: max(1, files // 13)]
    jobs = [(k, path, out, seed + k) for k, path in enumerate(chosen)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_variants_of, jobs, chunksize=8))
    return out


def _variants_of(job: tuple[int, Path, Path, int]) -> None:
    from PIL import Image, ImageOps

    from benchmarks.duplicates import make_variants

    k, path, out, seed = job
    staged = out / "_sources" / f"{k:05d}.png"
    staged.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(path) as image:
        picture = ImageOps.exif_transpose(image).convert("RGB")
        picture.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
        picture.save(staged)
    make_variants([staged], out / f"p{k:05d}", seed)
    staged.unlink()


def time_scan(index_dir: Path, env: dict) -> dict:
    """`cbir duplicates --json` in a new process on ``index_dir``: wall seconds and what it found."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cbir", "duplicates", "--index", str(index_dir), "--json", "-q"],
                          env=env, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    report = json.loads(proc.stdout)
    return {"seconds": round(seconds, 1), "images": report["images"], "candidate_pairs": report["candidate_pairs"],
            "checked_pairs": report["checked_pairs"], "groups": len(report["groups"]),
            "extra_copies": report["extra_copies"], "scan_seconds": report["seconds"]}


def files_test(shared: Path, extra: Path, work: Path, files: int, seed: int) -> dict:
    photos = real_library(shared, extra, work / "library", files, seed)
    env = dict(os.environ, CBIR_HOME=str(work / "library-home"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "cbir", "index", str(photos), "-q"], env=env, check=True)
    indexing = time.monotonic() - started
    index_dir = work / "library-home" / "index"
    catalog = index_dir / "catalog.sqlite"
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    return {"files": len(files), "index_seconds": round(indexing, 1),
            "index_images_per_s": round(len(files) / indexing, 1),
            "facts_ms_per_file": facts_cost(files[:: max(1, len(files) // 300)]),
            "catalog_mb": round(catalog.stat().st_size / 2**20, 1), "facts_kb_per_content": facts_size(index_dir),
            **time_scan(index_dir, env), "index_dir": str(index_dir)}


def facts_cost(files: list[Path]) -> float:
    """What computing and encoding one file's facts costs indexing, in ms on one core (from its bytes)."""
    from indexer.image_facts import facts_blob

    data = [p.read_bytes() for p in files]
    started = time.perf_counter()
    for content in data:
        facts_blob(content)
    return round(1000 * (time.perf_counter() - started) / len(data), 2)


def facts_size(index_dir: Path) -> float:
    import sqlite3

    with sqlite3.connect(index_dir / "catalog.sqlite") as conn:
        count, total = conn.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM picture_facts").fetchone()
    return round(total / max(count, 1) / 1024, 1)


def replicated_catalog(source: Path, out: Path, size: int, seed: int) -> Path:
    """A catalog of ``size`` images made from the real index ``source`` (see the module's note)."""
    from benchmarks.common import index_contents
    from index_store.catalog import CatalogReader
    from index_store.writer import IndexStore
    from indexer.image_facts import FACTS_VERSION

    rng = np.random.default_rng(seed)
    ids, matrix, rows, claim = index_contents(source)
    with CatalogReader.open(source) as reader:
        blobs = reader.facts_blobs([r.hash for r in rows.values()], FACTS_VERSION)
    copies = -(-size // len(ids))
    with IndexStore.open(out, claim) as store:
        run = store.begin_run("/library")
        made = 0
        for copy in range(copies):
            turn, _ = np.linalg.qr(rng.standard_normal((matrix.shape[1], matrix.shape[1])))
            turned = (matrix @ turn).astype(np.float32)
            for n, (image_id, vector) in enumerate(zip(ids, turned, strict=True)):
                if made == size:
                    break
                row = rows[image_id]
                digest = f"{row.hash}-{copy}"
                store.add(f"/library/{copy:03d}{row.path}", row.size, row.mtime_ns, digest, vector, run,
                          row.category, row.category_probs)
                if row.hash in blobs:
                    store.put_facts(digest, FACTS_VERSION, blobs[row.hash])
                made += 1
                if n % 2000 == 0:
                    store.commit()
            store.commit()
        store.finish()
    return out


def catalog_test(source: Path, work: Path, size: int, seed: int) -> dict:
    started = time.monotonic()
    index_dir = replicated_catalog(source, work / f"catalog-{size}", size, seed)
    built = time.monotonic() - started
    env = dict(os.environ, CBIR_HOME=str(work / "catalog-home"))
    return {"build_seconds": round(built, 1), "catalog_mb": round((index_dir / "catalog.sqlite").stat().st_size
                                                                  / 2**20, 1),
            **time_scan(index_dir, env)}
