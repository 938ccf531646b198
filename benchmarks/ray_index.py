"""`cbir index --ray` on a local Ray instance against the plain local run, same run, same photos.

    python -m benchmarks.ray_index DIR [--runs 3] [--json OUT] [--cbir-args "--runtime lite"]

Both are whole `cbir index` processes into fresh indexes (wall clock, start-up
included: the Ray side also starts a local Ray instance and its actor loads
the engine), alternating. Reports images/s for each, the overhead of the Ray
path, and how far the two catalogs' vectors are apart (they should be the
same engine's output, stored as float16), plus paths, hashes and categories
compared one by one. The Ray side's start-up (starting Ray, every actor
loading the engine) is read from its log and reported apart, with the rate
after it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json
from benchmarks.index_throughput import _environment


def run(folder: Path, home: str, extra: list[str]) -> tuple[float, dict, float]:
    """(wall seconds, the JSON summary, seconds the Ray side took to start its workers)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--json", *extra],
                          env=_environment(home), capture_output=True, text=True, check=True)
    ready = re.search(r"Ray workers ready on \d+ nodes in ([\d.]+)s", proc.stderr)
    return time.perf_counter() - started, json.loads(proc.stdout), float(ready.group(1)) if ready else 0.0


def catalog(home: str) -> dict[str, tuple]:
    with sqlite3.connect(Path(home) / "index" / "catalog.sqlite") as conn:
        return {p: (h, c, np.frombuffer(v, "<f2").astype(np.float32)) for p, h, c, v in conn.execute(
            "SELECT i.path, i.hash, i.category, v.data FROM images i JOIN vectors v ON v.id = i.id")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cbir-args", default="")
    args = parser.parse_args()
    extra = args.cbir_args.split()
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    own: dict[str, list[float]] = {"local": [], "ray": []}
    steady: list[float] = []
    startups: list[float] = []
    comparison = {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as local_home, tempfile.TemporaryDirectory() as ray_home:
            for name, home, more in (("local", local_home, []), ("ray", ray_home, ["--ray"])):
                wall, summary, startup = run(args.folder, home, extra + more)
                rates[name].append(summary["added"] / wall)
                own[name].append(summary["added"] / summary["seconds"])
                if name == "ray":
                    steady.append(summary["added"] / (summary["seconds"] - startup))
                    startups.append(startup)
                print(f"{name}: {rates[name][-1]:.2f} images/s", file=sys.stderr)
            if i == 0:
                a, b = catalog(local_home), catalog(ray_home)
                same_keys = sorted(a) == sorted(b)
                cos = [float(a[p][2] @ b[p][2]) for p in a if p in b]
                diff = [float(np.abs(a[p][2] - b[p][2]).max()) for p in a if p in b]
                comparison = {"images": len(a), "same_paths": same_keys,
                              "same_hashes": all(a[p][0] == b[p][0] for p in a if p in b),
                              "same_categories": sum(a[p][1] == b[p][1] for p in a if p in b),
                              "min_cosine": round(min(cos), 6), "max_abs_difference": max(diff)}
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {"folder": str(args.folder), "runs": args.runs, "cpus": os.cpu_count(), "cbir_args": extra,
              **{f"{k}_images_per_s": {"median": round(statistics.median(v), 2), "min": round(min(v), 2),
                                       "max": round(max(v), 2)} for k, v in rates.items()},
              **{f"{k}_images_per_s_own_run": round(statistics.median(v), 2) for k, v in own.items()},
              "ray_overhead_percent": round(100 * (med["local"] / med["ray"] - 1), 1),
              "ray_startup_s": round(statistics.median(startups), 2),
              "ray_images_per_s_after_startup": round(statistics.median(steady), 2),
              "comparison": comparison}
    print(f"local {med['local']:.2f} images/s, ray {med['ray']:.2f} images/s "
          f"(overhead {result['ray_overhead_percent']}%); vectors: min cosine {comparison['min_cosine']}")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
