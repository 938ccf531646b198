"""`cbir index --ray` on a local 2-CPU Ray instance: the same catalog as a local run, and no lost or
duplicated row when a worker is killed. Real photos, the real model, real Ray actors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo

pytest.importorskip("ray")


def _index(folder: Path, env, *extra) -> dict:
    proc = run_cbir(["index", str(folder), "--json", "--runtime", "lite", *extra], env)
    assert proc.returncode == 0, proc.stderr
    # cbir's stderr carries cbir's own lines only: Ray's logs stay in its session folder.
    assert all(line.startswith("cbir: ") for line in proc.stderr.splitlines() if line.strip()), proc.stderr
    return json.loads(proc.stdout)


def _catalog(index_dir: Path) -> dict[str, tuple]:
    """path -> (hash, size, category, tags, float16 vector) for every image in the catalog."""
    with sqlite3.connect(index_dir / "catalog.sqlite") as conn:
        rows = conn.execute("SELECT i.id, i.path, i.hash, i.size, i.category, v.data FROM images i "
                            "JOIN vectors v ON v.id = i.id").fetchall()
        tags = {}
        for image_id, tag in conn.execute("SELECT image_id, tag FROM image_tags"):
            tags.setdefault(image_id, set()).add(tag)
    return {path: (digest, size, category, frozenset(tags.get(i, ())), np.frombuffer(blob, "<f2").astype(np.float32))
            for i, path, digest, size, category, blob in rows}


def _assert_same(local: dict, distributed: dict, local_root: Path, ray_root: Path) -> None:
    mapped = {str(ray_root / Path(p).relative_to(local_root)): v for p, v in local.items()}
    assert sorted(mapped) == sorted(distributed)
    for path, (digest, size, category, tags, vector) in mapped.items():
        other = distributed[path]
        assert (other[0], other[1], other[2]) == (digest, size, category), path
        assert float(vector @ other[4]) > 0.9999, path  # float16 storage of the same engine's output
        assert np.abs(vector - other[4]).max() < 2e-3, path
        assert other[3] == tags, path


def _tree(root: Path, photos) -> Path:
    names = {"astronaut": "a/astronaut.jpg", "chelsea": "a/chelsea.jpg", "coffee": "b/coffee.png",
             "rocket": "b/rocket.webp", "china": "china.jpg", "flower": "flower.tif", "moon": "moon.jpg",
             "page": "c/page.png", "camera": "c/camera.bmp", "coins": "coins.jpg"}
    for name, relative in names.items():
        save_photo(photos[name], root / relative)
    shutil.copy(root / "moon.jpg", root / "c" / "moon-copy.jpg")  # byte-identical copy
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _change(root: Path, photos) -> None:
    os.rename(root / "a" / "chelsea.jpg", root / "b" / "cat.jpg")  # a rename
    (root / "coins.jpg").unlink()  # a removal
    save_photo(photos["astronaut"][::-1], root / "a" / "astronaut.jpg")  # new content at a known path
    now = time.time_ns()
    os.utime(root / "china.jpg", ns=(now, now + 10**9))  # touched, same bytes
    save_photo(photos["coffee"][:, ::-1], root / "new" / "mirrored.jpg")  # new


def test_ray_index_gives_the_local_catalog_first_time_and_incrementally(tmp_path, photos, cli_env):
    local_root, ray_root = _tree(tmp_path / "local", photos), _tree(tmp_path / "cluster", photos)
    local_env = {**cli_env, "CBIR_HOME": str(tmp_path / "home-local")}
    ray_env = {**cli_env, "CBIR_HOME": str(tmp_path / "home-ray")}

    first_local, first_ray = _index(local_root, local_env), _index(ray_root, ray_env, "--ray")
    assert first_ray["added"] == 11 and first_ray["skipped"] == {"corrupt image": 1}
    assert {k: v for k, v in first_ray.items() if k not in ("index", "seconds")} == \
        {k: v for k, v in first_local.items() if k not in ("index", "seconds")}
    _assert_same(_catalog(tmp_path / "home-local" / "index"), _catalog(tmp_path / "home-ray" / "index"),
                 local_root, ray_root)

    _change(local_root, photos)
    _change(ray_root, photos)
    second_local, second_ray = _index(local_root, local_env), _index(ray_root, ray_env, "--ray")
    assert (second_ray["added"], second_ray["updated"], second_ray["renamed"], second_ray["removed"],
            second_ray["unchanged"]) == (1, 1, 1, 1, 8)
    assert {k: v for k, v in second_ray.items() if k not in ("index", "seconds")} == \
        {k: v for k, v in second_local.items() if k not in ("index", "seconds")}
    _assert_same(_catalog(tmp_path / "home-local" / "index"), _catalog(tmp_path / "home-ray" / "index"),
                 local_root, ray_root)

    # The search index the driver published answers like the local one.
    query = ray_root / "b" / "cat.jpg"
    proc = run_cbir(["query", str(query), "--json", "-k", "3", "--runtime", "lite"], ray_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["path"] == str(query)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path, photos, cli_env, monkeypatch):
    from index_store.writer import IndexStore, fixed_claim
    from indexer import ray_index
    from indexer.engines.load import load_embedder

    root = tmp_path / "pictures"
    names = sorted(photos)
    for i in range(48):  # several chunks, so some are still queued when the worker dies
        save_photo(np.roll(photos[names[i % len(names)]], 7 * i, axis=1), root / f"p{i:02d}.jpg")
    monkeypatch.setattr(ray_index, "CHUNK", 4)
    monkeypatch.setenv("CBIR_WEIGHTS", cli_env["CBIR_WEIGHTS"])
    embedder = load_embedder(cli_env["CBIR_WEIGHTS"], runtime="lite")
    spec = ray_index.engine_spec(embedder, "lite", None)
    killed: list[int] = []

    def on_progress(n: int) -> None:
        if not killed:
            pid = run.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    index_dir = tmp_path / "index"
    with IndexStore.open(index_dir, fixed_claim(embedder.model_id, embedder.dim)) as store:
        run = ray_index.RayIndexRun(store, embedder, spec, None, on_progress=on_progress)
        summary = run.run([str(root)])
    assert killed and summary.added == 48 and summary.skipped_total == 0
    catalog = _catalog(index_dir)
    assert sorted(catalog) == sorted(str(p) for p in root.iterdir())  # every file once, no duplicate row
    with sqlite3.connect(index_dir / "catalog.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 48
    # And each vector is the model's, as a local run computes it.
    some = sorted(catalog)[:6]
    from indexer.loader import load_image

    expected = embedder.embed(np.stack([load_image(p)[0] for p in some])).vectors
    for path, vector in zip(some, expected, strict=True):
        assert float(vector @ catalog[path][4]) > 0.9999


def test_an_unreachable_cluster_is_one_line_and_exit_14(tmp_path, photo_tree, cli_env):
    proc = run_cbir(["index", str(photo_tree), "--ray", "127.0.0.1:1", "--runtime", "lite"], cli_env)
    assert proc.returncode == 14
    assert proc.stderr.strip().splitlines()[-1].startswith("cbir: error: cannot reach the Ray cluster at 127.0.0.1:1")
    assert "Traceback" not in proc.stderr
