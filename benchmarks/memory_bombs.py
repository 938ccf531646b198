"""Peak memory of `cbir index` and `cbir serve` fed decompression bombs, and whether the server keeps answering.

Bombs: PNGs of 16000x16000 black pixels (0.75 MB each, 256 megapixels), BMPs whose 102-byte header claims
16384x16384, a 99-megapixel PNG just under the server's cap, and a 12-megapixel camera JPEG.

- `cbir index` over a folder of them with 2, 4 and 8 reading threads: peak resident memory of the process.
- `cbir serve`: resident memory idle, its peak while 8 clients upload bombs at once (each a search), the
  slowest `/api/status` answer meanwhile, and resident memory 60 s after the last upload.

    python -m benchmarks.memory_bombs [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import emit_json

Image.MAX_IMAGE_PIXELS = None


def make_bombs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "black-256mp.png"
    Image.new("RGB", (16000, 16000)).save(png, optimize=True)
    under = folder / "black-99mp.png"
    Image.new("RGB", (10000, 9900)).save(under, optimize=True)
    w = h = 16384
    row = ((24 * w + 31) // 32) * 4
    bmp = folder / "liar.bmp"
    bmp.write_bytes(b"BM" + struct.pack("<IHHI", 14 + 40 + row * h, 0, 0, 54)
                    + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, row * h, 2835, 2835, 0, 0))
    camera = folder / "camera-12mp.jpg"
    Image.effect_noise((4032, 3024), 40).convert("RGB").save(camera, quality=90)
    return {"png-256mp": png, "png-99mp": under, "bmp-liar": bmp, "jpeg-12mp": camera}


def index_tree(folder: Path, bombs: dict[str, Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        (folder / f"png-{i}.png").write_bytes(bombs["png-256mp"].read_bytes() + bytes([i]))
    for i in range(30):
        (folder / f"bmp-{i}.bmp").write_bytes(bombs["bmp-liar"].read_bytes() + bytes([i]))
    (folder / "camera.jpg").write_bytes(bombs["jpeg-12mp"].read_bytes())


def peak_of_index(folder: Path, workers: int, env: dict[str, str]) -> dict:
    """Peak resident memory of one `cbir index` process (its own figure, from the kernel)."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    with tempfile.TemporaryDirectory(prefix="cbir-bombs-home-") as home:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "cbir", "index", str(folder), "-q",
                              "--workers", str(workers)], env=dict(env, CBIR_HOME=home), capture_output=True,
                             text=True, check=True).stdout.split()
    return {"workers": workers, "peak_rss_mb": round(int(out[0]) / 1024), "exit": int(out[1]),
            "seconds": round(time.perf_counter() - started, 1)}


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def serve_storm(index_folder: Path, bombs: dict[str, Path], env: dict[str, str], home: Path) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(home / "serve.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "cbir", "serve", "--port", str(port)],
                              env=dict(env, CBIR_HOME=str(home)), stderr=log, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/api/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(2)
        idle = rss_mb(server.pid)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.05)

        status_times: list[float] = []

        def poll_status() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                httpx.get(f"{base}/api/status", timeout=30)
                status_times.append(time.perf_counter() - started)
                time.sleep(0.1)

        kinds = ["png-256mp", "png-99mp", "bmp-liar", "jpeg-12mp"] * 2
        watchers = [threading.Thread(target=sample), threading.Thread(target=poll_status)]
        for w in watchers:
            w.start()

        def upload(kind: str) -> int:
            data = bombs[kind].read_bytes()
            return httpx.post(f"{base}/api/query", files={"image": (bombs[kind].name, data)}, data={"k": "3"},
                              timeout=300).status_code

        with ThreadPoolExecutor(8) as pool:
            answers = dict(zip(kinds, pool.map(upload, kinds), strict=False))
        stop.set()
        for w in watchers:
            w.join()
        time.sleep(60)
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.seek(0)
        server_log = log.read()
        log.close()
    return {"idle_rss_mb": round(idle), "peak_rss_mb": round(max(peak)), "above_idle_mb": round(max(peak) - idle),
            "rss_60s_after_mb": round(after), "answers": answers, "slowest_status_s": round(max(status_times), 3),
            "tracebacks_in_log": server_log.count("Traceback")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cbir-bombs-"))
    bombs = make_bombs(work / "bombs")
    tree = work / "tree"
    index_tree(tree, bombs)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if "CBIR_CACHE" not in env:
        from cbir.config import cache_dir

        env["CBIR_CACHE"] = str(cache_dir())
    runs = [peak_of_index(tree, workers, env) for workers in (2, 4, 8)]
    for run in runs:
        print(f"cbir index, {run['workers']} workers: peak {run['peak_rss_mb']} MB, {run['seconds']} s")
    home = work / "serve-home"
    subprocess.run([sys.executable, "-m", "cbir", "index", str(Path(__file__).resolve().parents[1] / "examples" /
                                                               "photos"), "-q"],
                   env=dict(env, CBIR_HOME=str(home)), check=True, capture_output=True)
    storm = serve_storm(tree, bombs, env, home)
    print(f"cbir serve: idle {storm['idle_rss_mb']} MB, peak {storm['peak_rss_mb']} MB under 8 uploads "
          f"(+{storm['above_idle_mb']} MB), {storm['rss_60s_after_mb']} MB a minute later; slowest /api/status "
          f"{storm['slowest_status_s']} s; answers {storm['answers']}; tracebacks {storm['tracebacks_in_log']}")
    emit_json({"index": runs, "serve": storm, "max_rss_limit_kb": resource.getrlimit(resource.RLIMIT_AS)[0]},
              args.json)


if __name__ == "__main__":
    main()
