"""`cbir watch`: how soon a new photo can be found, how fast a burst is indexed, and what watching costs idle.

    python -m benchmarks.watch [--shared DIR] [--burst 2000] [--singles 20] [--cold 5] [--idle 60] [--json OUT]

Photos: development photos (../shared/data: the gallery, the food groups, other), each written as JPEG
variants (mirrored, slightly cropped, re-encoded at quality 90) so that every file of the burst has its own
content: a byte-identical copy would reuse a stored vector and flatter the watcher. Nothing was tuned on
them. Each phase runs `cbir watch --json` as a user would, in a fresh CBIR_HOME (the engines measured on
this machine are shared through CBIR_CACHE, as for any user after the first big job).

- Single photos, warm: the watcher has its model loaded; a photo is copied in (written and closed), and
  the latency is from its close to the end of the job that published it (then `cbir query` finds it).
  ``--singles`` of them, 2 s apart (after one more that loads the model). Cold: the same after the model
  was released (``--release-after 1``): the indexing process starts and loads the model for it.
- Burst: ``--burst`` photos copied in as fast as the disk takes them (a phone sync), with the model
  released beforehand; throughput is photos over the time from the first copy to the last photo published,
  against `cbir index` on the same files (a fresh index, a new process: model load included) run just
  before. Latency of each photo of the burst: from its close to the publish of a search index holding it
  (the manifest, read every 0.1 s; a long job publishes every 10 s on its way).
- Idle: after the last change, the watcher is left alone with its default settings until it releases the
  model, then its CPU time (watcher and any child) is read from /proc over ``--idle`` seconds, with the
  resident memory of each process (the watcher, and multiprocessing's resource tracker) and whether an
  indexing process is left.
- With ``--scale N``: warm single photos into an index of N images (synthetic vectors, as
  benchmarks.query_latency builds them), where each job patches and publishes a large search index.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageOps

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["gallery", "retrieval_food_groups", "other"]
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def make_photos(shared: Path, out: Path, count: int) -> list[Path]:
    """``count`` JPEGs with contents of their own, from the development photos (kept when already there)."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for s in SOURCES for p in (shared / s).rglob("*") if p.suffix.lower() in SUFFIXES)
    made = []
    for i in range(count):
        target = out / f"IMG_{i:05d}.jpg"
        if not target.exists():
            with Image.open(sources[i % len(sources)]) as image:
                picture = ImageOps.exif_transpose(image).convert("RGB")
            variant = i // len(sources)
            if variant % 2:
                picture = ImageOps.mirror(picture)
            cut = 0.02 * (variant // 2 + 1)
            w, h = picture.size
            picture = picture.crop((int(w * cut), int(h * cut), w - int(w * cut), h - int(h * cut)))
            picture.save(target, "JPEG", quality=90)
        made.append(target)
    return made


class Watcher:
    """`cbir watch FOLDER --json` and the times its jobs ended, as seen here."""

    def __init__(self, folder: Path, env: dict, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cbir", "watch", str(folder), "--json", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.jobs: list[tuple[float, dict]] = []
        self.lines: list[str] = []
        self.on_job = lambda: None
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()

    def _read(self, stream, jobs: bool) -> None:
        for line in stream:
            seen = time.time()
            with self.cond:
                if jobs:
                    entry = json.loads(line)
                    if "totals" not in entry:
                        self.jobs.append((seen, entry))
                        self.on_job()
                else:
                    self.lines.append(line.rstrip())
                self.cond.notify_all()

    def wait(self, done, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not done():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"cbir watch: waited in vain; stderr: {self.lines[-5:]}")
                self.cond.wait(0.5)

    def said(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_s": round(statistics.median(values), 2), "p95_s": round(percentile(values, 95), 2),
            "max_s": round(max(values), 2)}


def singles(photos: list[Path], folder: Path, env: dict, cold: bool, index: Path | None = None) -> dict:
    """Latency from close to published, one photo at a time; ``cold``: the model released before each."""
    where = ["--index", str(index)] if index else []
    watcher = Watcher(folder, env, "--release-after", "1" if cold else "600", *where)
    try:
        watcher.wait(lambda: watcher.said("watching"))
        latencies = []
        for photo in photos:
            if cold:
                released = watcher.said("model released")
                watcher.wait(lambda r=released: watcher.said("model released") > r or not watcher.jobs)
            else:
                time.sleep(2)
            jobs = len(watcher.jobs)
            shutil.copy(photo, folder / photo.name)
            closed = time.time()
            watcher.wait(lambda j=jobs: any(e.get("added") for _, e in watcher.jobs[j:]))
            latencies.append(next(t for t, e in watcher.jobs[jobs:] if e.get("added")) - closed)
        if not cold:
            latencies = latencies[1:]  # the first loaded the model: it was the cold case
        found = subprocess.run([sys.executable, "-m", "cbir", "query", str(photos[-1]), "-k", "1", *where], env=env,
                               capture_output=True, text=True).stdout.split("\t")[-1].strip()
        assert Path(found).name == photos[-1].name, found
    finally:
        watcher.stop()
    return summary(latencies)


def indexed_paths(env: dict, first: int) -> set[str]:
    """The paths of the ``first`` images indexed (by id)."""
    import sqlite3

    with sqlite3.connect(f"file:{Path(env['CBIR_HOME']) / 'index' / 'catalog.sqlite'}?mode=ro", uri=True) as conn:
        return {p.decode() if isinstance(p, bytes) else p
                for (p,) in conn.execute("SELECT path FROM images ORDER BY id LIMIT ?", (first,))}


def burst(photos: list[Path], folder: Path, env: dict) -> dict:
    watcher = Watcher(folder, env, "--release-after", "1")
    manifest = Path(env["CBIR_HOME"]) / "index" / "manifest.json"
    published: dict[str, float] = {}
    steps: list[tuple[float, int]] = []  # (when, how many images the published search index held)
    done = threading.Event()

    def follow() -> None:
        """When the published search index grows, its newest rows (the burst only adds) can be found."""
        seen = -1
        while not done.is_set():
            try:
                count = json.loads(manifest.read_text())["count"]
            except (OSError, ValueError, KeyError):
                count = seen
            if count != seen:
                now = time.time()
                for path in indexed_paths(env, count) - published.keys():
                    published[path] = now
                steps.append((now, count))
                seen = count
            time.sleep(0.1)

    try:
        watcher.wait(lambda: watcher.said("watching"))
        watcher.wait(lambda: watcher.said("model released") or not watcher.jobs)
        before = len(indexed_paths(env, 1 << 30))  # the photos indexed before the burst
        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        closed = {}
        started = time.time()
        for photo in photos:
            shutil.copy(photo, folder / photo.name)
            closed[str(folder / photo.name)] = time.time()
        copied = time.time()
        deadline = time.monotonic() + 1800
        while not all(p in published for p in closed) and time.monotonic() < deadline:
            time.sleep(0.2)
        done.set()
        finished = max(published[p] for p in closed)
        jobs = [e for _, e in watcher.jobs if e["job"] == "paths"]
    finally:
        done.set()
        watcher.stop()
    seconds = finished - started
    return {"photos": len(photos), "copy_s": round(copied - started, 2), "seconds": round(seconds, 2),
            "images_per_s": round(len(photos) / seconds, 1), "jobs": len(jobs),
            "job_sizes": [e["paths"] for e in jobs], "engine": jobs[-1].get("engine") if jobs else None,
            "latency": summary([published[p] - closed[p] for p in closed]),
            # The latency is two-humped (a long job publishes every 10 s, then at its end), so its median falls
            # on either hump: these say how many of the burst could be found how long after the first copy.
            "published_s_and_count": [(round(t - started, 1), c - before) for t, c in steps if t >= started]}


def index_throughput(photos: list[Path], work: Path, env: dict) -> dict:
    folder = work / "index-run"
    folder.mkdir()
    for photo in photos:
        os.link(photo, folder / photo.name)
    fresh = dict(env, CBIR_HOME=str(work / "index-home"))
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "-q", "--json"], env=fresh,
                          capture_output=True, text=True, check=True)
    seconds = time.time() - started
    return {"photos": len(photos), "seconds": round(seconds, 2), "images_per_s": round(len(photos) / seconds, 1),
            "summary": json.loads(proc.stdout)}


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # own and waited-for children
    return total


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def idle(folder: Path, env: dict, photo: Path, seconds: float) -> dict:
    watcher = Watcher(folder, env)  # default settings
    try:
        watcher.wait(lambda: watcher.said("watching"))
        jobs = len(watcher.jobs)
        shutil.copy(photo, folder / "last-change.jpg")  # the last change: the model loads, then idles
        watcher.wait(lambda: len(watcher.jobs) > jobs)
        changed = time.time()
        watcher.wait(lambda: watcher.said("model released"), timeout=600)
        released_after = time.time() - changed
        pid = watcher.proc.pid
        hz = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks([pid, *children(pid)])
        time.sleep(seconds)
        used = cpu_ticks([pid, *children(pid)]) - before
        processes = {c: _describe(c) for c in [pid, *children(pid)]}
    finally:
        watcher.stop()
    return {"seconds": seconds, "cpu_share_of_one_core": round(used / hz / seconds, 5),
            "model_released_after_s": round(released_after, 1),
            "processes": list(processes.values()),
            "rss_mb_all": round(sum(p["rss_mb"] for p in processes.values()), 1),
            "indexing_processes_left": sum("spawn_main" in p["command"] for p in processes.values())}


def _describe(pid: int) -> dict:
    """A process's command line (shortened) and resident memory."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    rss_kb = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith("VmRSS")))
    return {"command": command[-120:], "rss_mb": round(rss_kb / 1024, 1)}


def at_scale(size: int, photos: list[Path], work: Path, env: dict) -> dict:
    """Warm single photos into an index of ``size`` images (synthetic vectors under the real model's id, as
    benchmarks.query_latency builds it), where each job patches and publishes a large search index."""
    from benchmarks.query_latency import build_index
    from indexer.engines.load import load_embedder

    index = work / f"index-{size}"
    index.mkdir()
    build_s = build_index(index, size, load_embedder(None, "default", bulk=False).model_id)
    folder = work / "scale-watched"
    folder.mkdir()
    shutil.copy(photos[0], folder / photos[0].name)
    subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--index", str(index), "-q"], env=env,
                   check=True, capture_output=True)  # the tags of the synthetic rows are made here, once
    return {"images": size, "build_s": round(build_s, 1),
            "single_warm": singles(photos[1:], folder, env, cold=False, index=index)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--scale", type=int, default=0,
                        help="also time warm single photos into an index of this many (synthetic) images")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cbir-watch-bench-"))
    photos = make_photos(args.shared, work / "photos", args.burst + args.singles + args.cold + 9)
    first, burst_photos = photos[0], photos[1: args.burst + 1]
    single_photos = photos[args.burst + 1: args.burst + 2 + args.singles]  # the first one loads the model
    cold_photos = photos[args.burst + 2 + args.singles: args.burst + 2 + args.singles + args.cold]
    env = dict(os.environ, CBIR_HOME=str(work / "home"), TF_CPP_MIN_LOG_LEVEL="2")
    folder = work / "watched"
    folder.mkdir()
    shutil.copy(first, folder / first.name)
    subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "-q"], env=env, check=True)

    result: dict = {"photos_from": [str(args.shared / s) for s in SOURCES]}
    result["index"] = index_throughput(burst_photos, work, env)
    result["burst"] = burst(burst_photos, folder, env)
    result["burst"]["share_of_index_throughput"] = round(
        result["burst"]["images_per_s"] / result["index"]["images_per_s"], 3)
    result["single_warm"] = singles(single_photos, folder, env, cold=False)
    result["single_cold"] = singles(cold_photos, folder, env, cold=True)
    result["idle"] = idle(folder, env, photos[0], args.idle)
    if args.scale:
        result["scale"] = at_scale(args.scale, photos[-7:], work, env)
    b, i = result["burst"], result["index"]
    print(f"cbir index: {i['images_per_s']} images/s; burst of {b['photos']} through cbir watch: "
          f"{b['images_per_s']} images/s ({b['share_of_index_throughput']:.0%}) in {b['jobs']} jobs, "
          f"latency p50 {b['latency']['p50_s']} s, p95 {b['latency']['p95_s']} s")
    for name in ("single_warm", "single_cold"):
        s = result[name]
        print(f"{name}: p50 {s['p50_s']} s, p95 {s['p95_s']} s, max {s['max_s']} s over {s['n']}")
    if args.scale:
        s = result["scale"]["single_warm"]
        print(f"single_warm into {args.scale} images: p50 {s['p50_s']} s, p95 {s['p95_s']} s, max {s['max_s']} s")
    d = result["idle"]
    print(f"idle: {d['cpu_share_of_one_core']:.3%} of a core over {d['seconds']:.0f} s, model released after "
          f"{d['model_released_after_s']} s, {len(d['processes'])} processes holding {d['rss_mb_all']} MB, "
          f"{d['indexing_processes_left']} indexing processes left")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
