"""`cbir serve` as a process: a real uvicorn server on a real socket."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import run_cbir


def start(args: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    handle = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "cbir", "serve", *args], env=env, stderr=handle,
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"at (http://\S+/(?:\?token=\S+)?)", log.read_text())
        if found:
            return proc, found.group(1)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"cbir serve did not start: {log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # uvicorn shuts down gracefully, then ends by the signal it caught
    assert proc.wait(timeout=30) in (0, -15)


def test_a_network_bind_prints_a_token_and_enforces_it(photo_tree, cli_env, tmp_path):
    index = tmp_path / "index"
    assert run_cbir(["index", str(photo_tree), "--index", str(index), "-q"], cli_env).returncode == 0
    proc, url = start(["--index", str(index), "--host", "0.0.0.0", "--port", "0", "--read-only"], cli_env,
                      tmp_path / "serve.log")
    try:
        token = url.split("?token=")[1]
        port = int(re.search(r":(\d+)/", url).group(1))
        base = f"http://127.0.0.1:{port}"
        assert len(token) >= 24
        assert httpx.get(f"{base}/api/status").status_code == 401
        status = httpx.get(f"{base}/api/status", headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200 and status.json()["images"] == 10
        page = httpx.get(f"{base}/?token={token}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "read-only" in page.text
    finally:
        stop(proc)


def test_a_taken_port_is_one_line_and_exit_2(cli_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "cbir", "serve", "--index", str(tmp_path / "i"), "--port",
                               str(port)], env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"cbir: error: port {port} on 127.0.0.1 is in use: choose another --port"


def test_a_server_without_an_index_yet_says_what_to_do(cli_env, tmp_path):
    proc, url = start(["--index", str(tmp_path / "none"), "--port", "0"], cli_env, tmp_path / "serve.log")
    try:
        page = httpx.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 200 and "run `cbir index DIR`" in page.text
        missing = httpx.get(url + "api/images")
        assert missing.status_code == 404 and "cbir index DIR" in missing.json()["error"]["message"]
        assert httpx.get(url + "api/status").json()["exists"] is False
    finally:
        stop(proc)
    assert os.path.isdir(tmp_path) and not (tmp_path / "none" / "catalog.sqlite").exists()
