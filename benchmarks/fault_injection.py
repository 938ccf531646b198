"""Kill `cbir index`, `cbir clean` and `cbir undo` at random moments on a real photo tree, and check.

After every kill:
- every original file's bytes exist exactly once (one inode, any number of names only while a move
  is half done) at a path inside the tree: nothing lost, nothing doubled, nothing outside;
- rerunning the killed command finishes it, and then the index agrees with the disk: every image
  file under the tree is in the catalog at its path with its content hash, and nothing else is.
At the end, undoing every run restores the tree byte for byte, every path as it was.

    python -m benchmarks.fault_injection --kills 40 [--photos DIR] [--json results/faults.json]

The other faults live beside it, and run by name: ``--part memory`` (benchmarks/memory_bombs.py: peak
memory of `cbir index` and `cbir serve` fed decompression bombs) and ``--part damage``
(benchmarks/catalog_damage.py: twenty kinds of damage to the catalog, the WAL, the search index, the
manifest, the tags and the journal, each followed by `status --check`, a query and `cbir index`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def build_tree(tree: Path, sources: list[Path], count: int, seed: int) -> None:
    """``count`` real photos in nested folders: the sources, then crops of them (distinct bytes)."""
    from PIL import Image

    rng = random.Random(seed)
    for i in range(count):
        source = sources[i % len(sources)]
        folder = tree / f"album-{i % 5}" / ("sub" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        if i < len(sources):
            shutil.copy(source, folder / source.name)
            continue
        with Image.open(source) as image:
            image = image.convert("RGB")
            w, h = image.size
            side = rng.uniform(0.6, 0.95)
            left, top = rng.randint(0, int(w * (1 - side))), rng.randint(0, int(h * (1 - side)))
            image.crop((left, top, left + int(w * side), top + int(h * side))).save(
                folder / f"crop-{i:03d}.jpg", quality=rng.randint(70, 95))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def disk_state(tree: Path) -> tuple[Counter, dict[str, str]]:
    """(copies of each content, counted by inode; path -> content hash) for every file under the tree."""
    by_inode: dict[tuple[int, int], str] = {}
    paths: dict[str, str] = {}
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            digest = by_inode.get((info.st_dev, info.st_ino)) or sha(path)
            by_inode[(info.st_dev, info.st_ino)] = digest
            paths[str(path)] = digest
    return Counter(by_inode.values()), paths


def catalog_agrees(index_dir: Path, tree: Path) -> list[str]:
    """Differences between the catalog and the image files on disk (an empty list when they agree)."""
    from index_store.hashing import file_content_hash

    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    rows = dict(conn.execute("SELECT path, hash FROM images"))
    conn.close()
    on_disk = {str(p): file_content_hash(p) for p in tree.rglob("*")
               if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")}
    problems = [f"not in the catalog: {p}" for p in on_disk if p not in rows]
    problems += [f"in the catalog but not on disk: {p}" for p in rows if p not in on_disk]
    problems += [f"stale hash: {p}" for p in on_disk if p in rows and rows[p] != on_disk[p]]
    return problems


def cbir(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", *args], env=env, capture_output=True, text=True,
                          timeout=900)


def run_and_kill(args: list[str], env: dict[str, str], delay: float) -> bool:
    """Start a command, SIGKILL it after ``delay`` seconds; True when it was still running."""
    proc = subprocess.Popen([sys.executable, "-m", "cbir", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def main() -> None:
    if "--part" in sys.argv:
        at = sys.argv.index("--part")
        part = sys.argv[at + 1] if at + 1 < len(sys.argv) else ""
        del sys.argv[at : at + 2]
        if part != "kills":
            from benchmarks import catalog_damage, memory_bombs

            {"memory": memory_bombs.main, "damage": catalog_damage.main}[part]()
            return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=40, help="Commands to start and kill at random moments.")
    parser.add_argument("--photos", type=Path, default=ROOT / "examples" / "photos",
                        help="Folder of real photos the tree is made from (default: examples/photos).")
    parser.add_argument("--images", type=int, default=80, help="Images in the tree.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    sources = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in EXTENSIONS)
    work = Path(tempfile.mkdtemp(prefix="cbir-faults-"))
    tree = work / "photos"
    build_tree(tree, sources, args.images, args.seed)
    env = dict(os.environ, CBIR_HOME=str(work / "home"), TF_CPP_MIN_LOG_LEVEL="2")
    if "CBIR_CACHE" not in env:
        from cbir.config import cache_dir

        env["CBIR_CACHE"] = str(cache_dir())  # one model export per machine
    index_dir = work / "home" / "index"
    original_counts, original_paths = disk_state(tree)
    clean_args = ["clean", "--category", "all", "--min-confidence", "0", "--yes", "-q"]

    # How long each command takes when left alone sets the window its kill is drawn from.
    started = time.monotonic()
    assert cbir(["index", str(tree), "-q", "--index", str(work / "probe-index")], env).returncode == 0
    index_seconds = time.monotonic() - started
    assert cbir(["index", str(tree), "-q"], env).returncode == 0
    started = time.monotonic()
    assert cbir(clean_args, env).returncode == 0
    clean_seconds = time.monotonic() - started
    started = time.monotonic()
    assert cbir(["undo", "--yes", "-q"], env).returncode == 0
    undo_seconds = time.monotonic() - started

    stats = Counter()
    failures: list[str] = []
    spare = 0
    for round_no in range(args.kills):
        # Clean and undo take turns (each has files to move then); index runs are mixed in.
        op = "index" if rng.random() < 0.3 else ("undo" if cbir(["undo", "-q"], env).returncode == 0 else "clean")
        if op == "index":
            spare_index = work / f"spare-index-{spare}"
            spare += rng.random() < 0.5  # sometimes resume a killed index, sometimes start a new one
            command = ["index", str(tree), "-q", "--batch-size", "4", "--index", str(spare_index)]
            window = index_seconds
        else:
            command = clean_args if op == "clean" else ["undo", "--yes", "-q"]
            window = clean_seconds if op == "clean" else undo_seconds
        killed = run_and_kill(command, env, rng.uniform(0.2, window * 1.1))
        stats["runs"] += 1
        stats["kills"] += killed
        stats[f"{op} killed" if killed else f"{op} finished first"] += 1
        if killed and op != "index":
            runs = json.loads(cbir(["history", "--json"], env).stdout or "[]")
            stats[f"{op} killed while moving files"] += any(r["state"] == "interrupted" for r in runs)

        counts, paths = disk_state(tree)
        stats["files checked"] += len(paths)
        lost = original_counts - counts
        doubled = counts - original_counts
        if lost or doubled:
            failures.append(f"round {round_no} ({op}): lost {sum(lost.values())}, doubled {sum(doubled.values())}")
        stats["losses"] += sum(lost.values())
        stats["doubled"] += sum(doubled.values())

        rerun = cbir(command, env)
        if rerun.returncode not in (0, 2):  # 2: nothing left to undo
            failures.append(f"round {round_no} ({op}): rerun exited {rerun.returncode}: {rerun.stderr.strip()}")
        check_index = spare_index if op == "index" else index_dir
        if op != "index":
            settle = cbir(["index", "-q", "--json"], env)
            if settle.returncode != 0:
                failures.append(f"round {round_no}: index after the rerun exited {settle.returncode}")
        problems = catalog_agrees(check_index, tree)
        stats["index disagreements"] += len(problems)
        failures += [f"round {round_no} ({op}): {p}" for p in problems[:5]]

    while cbir(["undo", "--yes", "-q"], env).returncode == 0:
        stats["final undos"] += 1
    _, final_paths = disk_state(tree)
    restored = final_paths == original_paths
    if not restored:
        failures.append("the final undo did not restore the tree byte for byte")
    result = {"runs": stats["runs"], "kills": stats["kills"], "files_checked": stats["files checked"],
              "losses": stats["losses"], "doubled": stats["doubled"],
              "index_disagreements": stats["index disagreements"], "restored_byte_for_byte": restored,
              "images": len(original_paths),
              "by_command": {k: v for k, v in stats.items() if k.endswith(("killed", "first", "files"))},
              "seconds_alone": {"index": round(index_seconds, 2), "clean": round(clean_seconds, 2),
                                "undo": round(undo_seconds, 2)},
              "failures": failures}
    print(f"{result['runs']} runs, {result['kills']} killed mid-run, {result['files_checked']} file checks, "
          f"{result['losses']} lost, {result['doubled']} doubled, {result['index_disagreements']} index "
          f"disagreements, final undo restored the tree: {restored}")
    emit_json(result, args.json)
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
