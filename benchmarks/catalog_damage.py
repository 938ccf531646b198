"""Damage an index twenty ways, then see what cbir says and whether `cbir index` mends it.

For each kind of damage, on a fresh index of real photos: `cbir status --check` (is it detected: exit 13,
or nothing to see because it is mended silently), a query (exit 0, or 13 naming the damage; never 1, "a
bug in cbir"), then `cbir index` (or, when that says the catalog cannot be mended, `cbir index --rebuild`),
and last the proof: `status --check` clean, the query answering, and every photo in the catalog with a
vector within cosine 0.999 of the undamaged index's.

    python -m benchmarks.catalog_damage [--photos DIR] [--images 40] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json
from benchmarks.fault_injection import EXTENSIONS, build_tree

ROOT = Path(__file__).resolve().parents[1]


def _sql(index: Path, *statements: str) -> None:
    conn = sqlite3.connect(index / "catalog.sqlite")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _scribble(path: Path, at: float, length: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + length] = os.urandom(min(length, len(data) - start))
    path.write_bytes(bytes(data))


def _other_dimension_faiss(index: Path) -> None:
    """A FAISS file of 16-d vectors, with a manifest whose size and checksum match it: only its content lies."""
    import faiss

    from index_store.hashing import file_crc32

    small = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    count = sqlite3.connect(index / "catalog.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
    small.add_with_ids(np.random.default_rng(0).standard_normal((count, 16)).astype(np.float32),
                       np.arange(1, count + 1, dtype=np.int64))
    faiss.write_index(small, str(index / "vectors.faiss"))
    manifest = json.loads((index / "manifest.json").read_text())
    written = index / "vectors.faiss"
    manifest.update(faiss_bytes=written.stat().st_size, faiss_crc32=file_crc32(written))
    (index / "manifest.json").write_text(json.dumps(manifest))


def _lost_wal(index: Path) -> None:
    """What a first `cbir index` killed before its first checkpoint leaves when its WAL file is lost."""
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "vectors.faiss", "manifest.json"):
        (index / name).unlink(missing_ok=True)
    conn = sqlite3.connect(index / "catalog.sqlite")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY)")  # what reached the main file
    conn.execute("DROP TABLE images")
    conn.close()


DAMAGE: dict[str, Callable[[Path], object]] = {
    "a vector blob cut short": lambda i: _sql(i, "UPDATE vectors SET data = substr(data, 1, 100) WHERE id = 3"),
    "a vector stored as text": lambda i: _sql(i, "UPDATE vectors SET data = 'not a vector' WHERE id = 5"),
    "the vectors table emptied": lambda i: _sql(i, "DELETE FROM vectors"),
    "five vectors deleted": lambda i: _sql(i, "DELETE FROM vectors WHERE id IN (1, 2, 3, 4, 5)"),
    "vectors of no image": lambda i: _sql(i, "INSERT INTO vectors SELECT id + 100000, data FROM vectors"),
    "the tags table emptied": lambda i: _sql(i, "DELETE FROM image_tags"),
    "the tags version changed": lambda i: _sql(i, "UPDATE meta SET value = 'other' WHERE key = 'tags_version'"),
    "a category's probabilities garbled": lambda i: _sql(i, "UPDATE images SET category_probs = '{bad' WHERE id = 2"),
    "meta dim garbled": lambda i: _sql(i, "UPDATE meta SET value = 'wide' WHERE key = 'dim'"),
    "meta generation garbled": lambda i: _sql(i, "UPDATE meta SET value = 'new' WHERE key = 'generation'"),
    "the catalog cut in half": lambda i: _cut(i / "catalog.sqlite", 0.5),
    "the catalog's middle scribbled": lambda i: _scribble(i / "catalog.sqlite", 0.5),
    "the WAL of a first run lost": _lost_wal,
    "the FAISS file cut short": lambda i: _cut(i / "vectors.faiss", 0.7),
    "the FAISS file deleted": lambda i: (i / "vectors.faiss").unlink(),
    "a FAISS file of another dimension, its manifest matching": _other_dimension_faiss,
    "the manifest garbled": lambda i: (i / "manifest.json").write_text("{not json"),
    "the manifest deleted": lambda i: (i / "manifest.json").unlink(),
    "the journal scribbled": lambda i: _scribble(i / "journal.sqlite", 0.3, 20000),
    "the writer lock garbled": lambda i: (i / "writer.lock").write_bytes(b"\x00garbage\xff" * 10),
}


def cbir(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", *args], env=env, capture_output=True, text=True,
                          timeout=900)


def vectors(index: Path) -> dict[str, np.ndarray]:
    conn = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    rows = conn.execute("SELECT i.path, v.data FROM images i JOIN vectors v ON v.id = i.id").fetchall()
    conn.close()
    return {path: np.frombuffer(data, "<f2").astype(np.float32) for path, data in rows}


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1][:240] if lines else ""


def trial(name: str, damage: Callable[[Path], object], tree: Path, pristine: Path, work: Path,
          env: dict[str, str], reference: dict[str, np.ndarray], query: Path) -> dict:
    home = work / name.replace(" ", "-").replace("'", "")
    shutil.copytree(pristine, home)
    index = home / "index"
    run_env = dict(env, CBIR_HOME=str(home))
    damage(index)
    check = cbir(["status", "--check"], run_env)
    asked = cbir(["query", str(query), "-k", "3"], run_env)
    mend = cbir(["index", str(tree), "-q"], run_env)
    mended_by = "index"
    after = cbir(["status", "--check", "--json"], run_env)
    beyond = after.returncode == 13 and (not after.stdout.strip() or any(
        p["part"] == "catalog" for p in json.loads(after.stdout)["problems"]))
    if mend.returncode == 13 or beyond:  # what the check says mends a catalog beyond mending
        mend = cbir(["index", str(tree), "-q", "--rebuild"], run_env)
        mended_by = "index --rebuild"
        after = cbir(["status", "--check"], run_env)
    again = cbir(["query", str(query), "-k", "3"], run_env)
    got = vectors(index) if mend.returncode == 0 else {}
    same = bool(got) and set(got) == set(reference) and all(
        float(got[p] @ reference[p]) / (np.linalg.norm(got[p]) * np.linalg.norm(reference[p])) > 0.999
        for p in reference)
    bug = any("a bug in cbir" in p.stderr for p in (check, asked, mend, after, again))
    return {
        "damage": name, "status_check_exit": check.returncode, "detected": check.returncode == 13,
        "check_says": last_line(check) if check.returncode else "", "query_exit": asked.returncode,
        "query_says": last_line(asked) if asked.returncode else "", "mended_by": mended_by if mend.returncode == 0
        else f"not mended ({mend.returncode}: {last_line(mend)})", "check_after": after.returncode,
        "query_after": again.returncode, "catalog_whole": same, "reported_as_a_bug": bug,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT / "examples" / "photos")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sources = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in EXTENSIONS)
    work = Path(tempfile.mkdtemp(prefix="cbir-damage-"))
    tree = work / "photos"
    build_tree(tree, sources, args.images, 0)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if "CBIR_CACHE" not in env:
        from cbir.config import cache_dir

        env["CBIR_CACHE"] = str(cache_dir())
    pristine = work / "pristine"
    first = cbir(["index", str(tree), "-q"], dict(env, CBIR_HOME=str(pristine)))
    assert first.returncode == 0, first.stderr
    query = next(tree.rglob("crop-*.jpg"))
    # A clean run and its undo, so that the journal exists and holds history.
    assert cbir(["clean", "--category", "all", "--min-confidence", "0.99", "--yes", "-q"],
                dict(env, CBIR_HOME=str(pristine))).returncode in (0, 10)
    reference = vectors(pristine / "index")
    rows = [trial(name, damage, tree, pristine, work, env, reference, query) for name, damage in DAMAGE.items()]
    print(f"{'damage':<52}{'check':>6}{'query':>6}  {'mended by':<16}{'after':>6}{'whole':>6}")
    for r in rows:
        print(f"{r['damage']:<52}{r['status_check_exit']:>6}{r['query_exit']:>6}  {r['mended_by'][:16]:<16}"
              f"{r['check_after']:>6}{'yes' if r['catalog_whole'] else 'NO':>6}")
    summary = {"kinds": len(rows), "detected_or_mended_silently": sum(
        r["detected"] or (r["query_exit"] == 0 and r["catalog_whole"]) for r in rows),
        "mended": sum(r["catalog_whole"] and r["check_after"] == 0 for r in rows),
        "reported_as_a_bug": sum(r["reported_as_a_bug"] for r in rows)}
    print(json.dumps(summary))
    emit_json({"images": args.images, "summary": summary, "trials": rows}, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
