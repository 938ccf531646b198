"""Hardening, round two: decoding within a memory budget, special files, a damaged catalog named and mended,
and the web server's limits (upload pixels, integer ranges, error shapes, job lanes)."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cbir, save_photo


def _index(root: Path, env: dict, *extra: str) -> dict:
    proc = run_cbir(["index", str(root), "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _catalog(env: dict) -> Path:
    return Path(env["CBIR_HOME"]) / "index" / "catalog.sqlite"


def _sql(env: dict, *statements: str) -> None:
    with sqlite3.connect(_catalog(env)) as conn:
        for statement in statements:
            conn.execute(statement)


# -- decoding within a budget ----------------------------------------------------------------------------------


def test_the_decode_budget_admits_what_fits_and_a_giant_alone():
    from indexer.decode_budget import DecodeBudget

    budget = DecodeBudget(100)
    order: list[str] = []
    gate = threading.Event()

    def hold(name: str, size: int, wait: bool) -> None:
        with budget.hold(size):
            order.append(f"+{name}")
            if wait:
                gate.wait(5)
            order.append(f"-{name}")

    first = threading.Thread(target=hold, args=("a", 60, True))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=hold, args=("b", 60, False))  # 120 > 100: waits for a
    giant = threading.Thread(target=hold, args=("g", 500, False))  # larger than the budget: alone
    second.start()
    giant.start()
    time.sleep(0.2)
    assert order == ["+a"] and budget.used == 60
    gate.set()
    for t in (first, second, giant):
        t.join(5)
    assert budget.used == 0 and budget.peak == 500
    assert order.index("-a") < order.index("+b") and order.index("-a") < order.index("+g")
    running = 0
    for step in order:  # the giant never ran beside anything
        running += 1 if step[0] == "+" else -1
        if step == "+g":
            assert running == 1


def test_indexing_large_pictures_decodes_them_within_the_budget(tmp_path, cli_env, monkeypatch):
    from indexer import decode_budget

    root = tmp_path / "big"
    for i in range(4):
        save_photo(np.full((3000, 4000, 3), 40 * i, np.uint8), root / f"big{i}.png")
    budget = decode_budget.DecodeBudget(64 << 20)  # each picture needs ~96 MB: one at a time
    monkeypatch.setattr(decode_budget, "BUDGET", budget)
    monkeypatch.setattr("indexer.loader.BUDGET", budget)
    assert _index(root, cli_env, "--workers", "4")["added"] == 4
    assert budget.peak == 3000 * 4000 * 4 * 2 and budget.used == 0  # never two in flight


def test_a_fifo_or_a_device_where_a_photo_was_is_refused_not_waited_on(tmp_path, photos, cli_env):
    from indexer.loader import read_file

    root = tmp_path / "photos"
    save_photo(photos["coffee"], root / "coffee.jpg")
    os.mkfifo(root / "pipe.jpg")
    summary = _index(root, cli_env)
    assert summary["added"] == 1 and summary["skipped"] == {"not a regular file": 1}
    with pytest.raises(Exception, match="not a regular file"):
        read_file("/dev/zero")


# -- a damaged catalog ----------------------------------------------------------------------------------------


def test_damaged_vectors_are_named_by_readers_and_mended_by_index(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    _sql(cli_env, "UPDATE vectors SET data = substr(data, 1, 10) WHERE id = 2")
    query = run_cbir(["query", str(photo_tree / "moon.jpg")], cli_env)
    assert query.returncode == 13 and "damaged: vectors: 1 stored vectors are not 2048 float16" in query.stderr
    assert "bug" not in query.stderr
    check = run_cbir(["status", "--check", "--json"], cli_env)
    assert check.returncode == 13 and json.loads(check.stdout)["problems"][0]["part"] == "vectors"
    mended = _index(photo_tree, cli_env)
    assert mended["added"] == 1 and mended["unchanged"] == 9  # only the damaged image is embedded again
    assert run_cbir(["status", "--check"], cli_env).returncode == 0
    assert run_cbir(["query", str(photo_tree / "moon.jpg")], cli_env).returncode == 0


def test_emptied_vectors_and_tags_are_detected_and_rebuilt(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    _sql(cli_env, "DELETE FROM image_tags")
    found = run_cbir(["find", "cat"], cli_env)
    assert found.returncode == 13 and "the tags of all 10 images are missing" in found.stderr
    _sql(cli_env, "DELETE FROM vectors")
    assert run_cbir(["duplicates"], cli_env).returncode == 13
    again = _index(photo_tree, cli_env)
    assert again["added"] == 10
    assert json.loads(run_cbir(["find", "cat", "--json"], cli_env).stdout)[0]["path"].endswith("chelsea.jpg")


def test_a_search_index_of_another_dimension_is_rebuilt(photo_tree, cli_env):
    import faiss

    from index_store.hashing import file_crc32

    _index(photo_tree, cli_env)
    index = _catalog(cli_env).parent
    small = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    small.add_with_ids(np.ones((10, 16), np.float32), np.arange(1, 11, dtype=np.int64))
    faiss.write_index(small, str(index / "vectors.faiss"))
    manifest = json.loads((index / "manifest.json").read_text())
    written = index / "vectors.faiss"
    manifest.update(faiss_bytes=written.stat().st_size, faiss_crc32=file_crc32(written))
    (index / "manifest.json").write_text(json.dumps(manifest))
    query = run_cbir(["query", str(photo_tree / "moon.jpg"), "--json"], cli_env)  # rebuilt in memory
    assert query.returncode == 0 and json.loads(query.stdout)[0]["path"].endswith("moon.jpg")
    assert run_cbir(["status", "--check"], cli_env).returncode == 13
    _index(photo_tree, cli_env)  # and on disk by the next writer
    assert run_cbir(["status", "--check"], cli_env).returncode == 0


def test_a_catalog_beyond_mending_is_named_and_rebuilt_aside(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    catalog = _catalog(cli_env)
    data = catalog.read_bytes()
    catalog.write_bytes(data[: len(data) // 2])  # cut in half
    status = run_cbir(["query", str(photo_tree / "moon.jpg")], cli_env)
    assert status.returncode == 13 and "--rebuild" in status.stderr and "bug" not in status.stderr
    refused = run_cbir(["index", str(photo_tree)], cli_env)
    assert refused.returncode == 13
    rebuilt = run_cbir(["index", str(photo_tree), "--rebuild", "--json"], cli_env)
    assert rebuilt.returncode == 0 and json.loads(rebuilt.stdout)["added"] == 10
    (aside,) = catalog.parent.glob("damaged-*")
    assert (aside / "catalog.sqlite").read_bytes() == data[: len(data) // 2]  # kept, not deleted
    assert run_cbir(["status", "--check"], cli_env).returncode == 0


def test_a_first_run_whose_wal_was_lost_is_damaged_and_starts_over(photo_tree, cli_env):
    index = _catalog(cli_env).parent
    index.mkdir(parents=True)
    with sqlite3.connect(index / "catalog.sqlite") as conn:  # what reaches the main file before a checkpoint
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    status = run_cbir(["query", str(photo_tree / "moon.jpg")], cli_env)
    assert status.returncode == 13 and "holds no catalog" in status.stderr and "--rebuild" in status.stderr
    assert _index(photo_tree, cli_env)["added"] == 10


# -- the web server's limits -------------------------------------------------------------------------------


@pytest.fixture
def served(photo_tree, cli_env, weights_file):
    from fastapi.testclient import TestClient

    from cbir.warm import Warm
    from cbir.web.app import create_app
    from cbir.web.library import Library
    from cbir.web.security import Guard
    from cbir.web.server import Server

    _index(photo_tree, cli_env)
    index = _catalog(cli_env).parent

    def client(read_only: bool = False) -> TestClient:
        server = Server(Library(index), Guard("127.0.0.1"), Warm(weights=str(weights_file), bulk=True, work=1),
                        read_only=read_only)
        return TestClient(create_app(server), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)

    return client


def _png(size: tuple[int, int]) -> bytes:
    import io

    Image.MAX_IMAGE_PIXELS = None
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG", optimize=True)
    return out.getvalue()


def test_uploads_over_the_pixel_cap_are_refused_before_decoding(served):
    client = served()
    assert client.get("/api/session").json()["max_upload_pixels"] == 100_000_000
    big = client.post("/api/query", files={"image": ("big.png", _png((12000, 9000)))})  # 108 Mpx
    assert big.status_code == 413 and "too many pixels" in big.json()["error"]["message"]
    w = h = 16384
    row = ((24 * w + 31) // 32) * 4
    liar = b"BM" + struct.pack("<IHHI", 14 + 40 + row * h, 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, w, h, 1, 24, 0, row * h, 2835, 2835, 0, 0)
    answer = client.post("/api/query", files={"image": ("liar.bmp", liar)})
    assert answer.status_code == 413 and answer.json()["error"]["type"] == "ImageDecodeError"


def test_every_integer_is_range_checked_and_every_error_has_one_shape(served):
    client = served()
    for url in ("/api/images/9223372036854775808", "/api/query?id=9223372036854775808",
                "/api/images?offset=9223372036854775808", "/api/images/-1/thumbnail"):
        response = client.get(url)
        assert response.status_code == 422 and set(response.json()) == {"error"}, url
    missing = client.get("/api/no/such/thing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert client.post("/api/status").status_code == 405 and "error" in client.post("/api/status").json()


def test_work_needs_the_form_token_is_refused_when_read_only_and_lanes_are_bounded(served, monkeypatch):
    from cbir.web import jobs

    client = served()
    token = {"X-CSRF-Token": client.get("/api/session").json()["csrf_token"]}
    assert client.post("/api/duplicates/scan", json={"level": "near"}).status_code == 403
    assert client.get("/api/duplicates").status_code == 403
    assert served(read_only=True).post("/api/duplicates/scan", json={"level": "near"},
                                       headers=token).status_code == 403
    started = threading.Event()
    release = threading.Event()
    monkeypatch.setattr(jobs, "LANE_LIMIT", 2)
    server = client.app.state.server

    def slow(job):
        started.set()
        release.wait(10)
        return {}

    server.jobs.start("clean", slow)
    started.wait(5)
    server.jobs.start("clean", slow)
    answer = client.post("/api/undo", json={"dry_run": False}, headers=token)  # a third move job
    assert answer.status_code == 429 and answer.json()["error"]["type"] == "TooManyJobs"
    scan = client.post("/api/duplicates/scan", json={"level": "exact"}, headers=token)
    assert scan.status_code == 202  # scans have a lane of their own: a clean never waits behind them
    release.set()
    done = client.get(f"/api/jobs/{scan.json()['id']}")
    for _ in range(100):
        if done.json()["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
        done = client.get(f"/api/jobs/{scan.json()['id']}")
    assert done.json()["state"] == "done"


def test_a_fifo_in_place_of_an_indexed_file_costs_one_request(served, photo_tree):
    client = served()
    images = client.get("/api/images", params={"limit": 50}).json()["images"]
    moon = next(i for i in images if i["path"].endswith("moon.jpg"))
    os.unlink(moon["path"])
    os.mkfifo(moon["path"])
    started = time.perf_counter()
    answer = client.get(f"/api/images/{moon['id']}/file")
    assert answer.status_code == 404 and time.perf_counter() - started < 5
    assert client.get(f"/api/images/{moon['id']}/thumbnail").status_code == 404
    assert client.get("/api/status").status_code == 200
