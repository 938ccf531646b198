"""`cbir index`, `cbir query` and `cbir status` end to end: real model, SQLite and FAISS."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bad_inputs import make_bad_corpus
from tests.conftest import run_cbir, save_photo


def _index(folder: Path, env, *extra) -> dict:
    proc = run_cbir(["index", str(folder), "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _query(image: Path, env, *extra) -> list[dict]:
    proc = run_cbir(["query", str(image), "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_incremental_reindex_handles_every_kind_of_change(photo_tree, photos, cli_env, tmp_path):
    first = _index(photo_tree, cli_env)
    assert first["added"] == 10 and first["skipped"] == {}
    before = {h["path"]: h["id"] for h in _query(photo_tree / "chelsea.jpg", cli_env, "-k", "10")}
    assert len(before) == 10

    again = _index(photo_tree, cli_env)
    assert again["unchanged"] == 10 and again["added"] == again["updated"] == again["removed"] == 0

    renamed_from, renamed_to = photo_tree / "coffee.jpg", photo_tree / "sub" / "my-coffee.jpg"
    os.rename(renamed_from, renamed_to)
    (photo_tree / "rocket.gif").unlink()
    save_photo(photos["chelsea"][:, ::-1], photo_tree / "chelsea.jpg")  # modified content
    touched = photo_tree / "china.webp"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # new mtime, same bytes
    save_photo(photos["astronaut"][::-1], photo_tree / "new" / "upside-down.jpg")  # new
    shutil.copy(photo_tree / "moon.jpg", photo_tree / "new" / "moon-copy.jpg")  # duplicate

    summary = _index(photo_tree, cli_env)
    assert (summary["added"], summary["updated"], summary["renamed"], summary["removed"]) == (2, 1, 1, 1)
    assert summary["unchanged"] == 7

    after = {h["path"]: h for h in _query(photo_tree / "new" / "moon-copy.jpg", cli_env, "-k", "20")}
    assert len(after) == 11
    assert str(renamed_from) not in after and str(photo_tree / "rocket.gif") not in after
    assert after[str(renamed_to)]["id"] == before[str(renamed_from)]  # kept its vector id
    assert after[str(photo_tree / "moon.jpg")]["score"] > 0.999  # the copy shares its vector

    hits = _query(photo_tree / "chelsea.jpg", cli_env, "-k", "1")
    assert hits[0]["path"] == str(photo_tree / "chelsea.jpg") and hits[0]["score"] == 1.0


def test_query_results_self_first_exclude_self_and_plain_output(photo_tree, cli_env, photos, tmp_path):
    _index(photo_tree, cli_env)
    proc = run_cbir(["query", str(photo_tree / "chelsea.jpg"), "-k", "3"], cli_env)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(lines) == 3 and lines[0] == ["1.0000", str(photo_tree / "chelsea.jpg")]
    scores = [float(s) for s, _ in lines]
    assert scores == sorted(scores, reverse=True)

    excluded = _query(photo_tree / "chelsea.jpg", cli_env, "-k", "3", "--exclude-self")
    assert len(excluded) == 3 and str(photo_tree / "chelsea.jpg") not in {h["path"] for h in excluded}
    # A query image that is not indexed: the nearest is the same photo in another format.
    outside = save_photo(photos["coffee"], tmp_path / "elsewhere" / "coffee-again.png")
    assert _query(outside, cli_env, "-k", "1")[0]["path"] == str(photo_tree / "coffee.jpg")


def test_bad_inputs_are_skipped_with_reasons_and_indexing_goes_on(photos, cli_env, tmp_path):
    root = tmp_path / "bad"
    expected = make_bad_corpus(root, photos["chelsea"])
    save_photo(photos["coffee"], root / "fine" / "coffee.png")
    proc = run_cbir(["index", str(root), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["added"] == 2  # good.jpg and coffee.png
    for name, reason in expected.items():
        line = next((ln for ln in proc.stderr.splitlines() if ln.startswith(f"cbir: skipped {root / name}:")), None)
        assert line is not None and reason in line, (name, proc.stderr)
    assert sum(summary["skipped"].values()) == len(expected)


@pytest.mark.slow
def test_killed_index_leaves_a_usable_index_and_a_rerun_completes(photos, cli_env, tmp_path):
    root = tmp_path / "many"
    count = 0
    for name, array in sorted(photos.items()):
        for shift in range(6):
            crop = array[shift * 8 :, shift * 5 :]
            save_photo(crop, root / f"{name}-{shift}.jpg")
            count += 1
    index_dir = Path(cli_env["CBIR_HOME"]) / "index"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cbir", "index", str(root), "--batch-size", "4"],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    committed = 0
    deadline = time.monotonic() + 300
    while committed < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
            committed = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            conn.close()
        except sqlite3.Error:
            committed = 0
    assert proc.poll() is None, "index finished before it could be killed: " + proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    status = run_cbir(["status", "--json"], cli_env)
    assert status.returncode == 0, status.stderr
    partial = json.loads(status.stdout)["images"]
    assert 8 <= partial < count
    hits = _query(root / "chelsea-0.jpg", cli_env, "-k", "3")  # usable while incomplete
    assert len(hits) == 3

    rerun = _index(root, cli_env)
    assert rerun["unchanged"] == partial and rerun["added"] == count - partial
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["images"] == count


def test_busy_index_is_refused(photo_tree, cli_env):
    from index_store.writer import IndexStore

    lock = IndexStore.lock(Path(cli_env["CBIR_HOME"]) / "index")
    try:
        proc = run_cbir(["index", str(photo_tree)], cli_env)
    finally:
        lock.release()
    assert proc.returncode == 6
    assert proc.stderr.strip().startswith("cbir: error: index") and "busy" in proc.stderr


def test_errors_are_one_line_with_distinct_exit_codes(photo_tree, cli_env, tmp_path):
    def error(args, code):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        return proc.stderr.strip()

    assert "cbir index" in error(["query", str(photo_tree / "chelsea.jpg")], 5)  # no index yet
    assert "does not exist" in error(["query", str(tmp_path / "missing.jpg")], 3)
    assert "-k must be at least 1" in error(["query", str(photo_tree / "chelsea.jpg"), "-k", "0"], 2)
    assert "no folders given" in error(["index"], 2)

    empty = tmp_path / "empty-folder"
    empty.mkdir()
    _index(empty, cli_env)
    assert "holds no images" in error(["query", str(photo_tree / "chelsea.jpg")], 5)
    _index(photo_tree, cli_env)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    assert "not an image" in error(["query", str(broken)], 4)


def test_status_reports_the_index(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    proc = run_cbir(["status"], cli_env)
    assert proc.returncode == 0
    assert "images: 10" in proc.stdout and "resnet50-imagenet-" in proc.stdout
    data = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
    assert data["images"] == 10 and data["roots"] == [str(photo_tree)] and data["disk_bytes"] > 10 * 4096
    assert data["search_index_current"] is True


def test_reindex_without_folders_uses_the_known_roots(photo_tree, cli_env, photos):
    _index(photo_tree, cli_env)
    save_photo(photos["coins"][::-1], photo_tree / "later.png")
    proc = run_cbir(["index", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] == 1


def test_help_does_not_import_tensorflow(cli_env):
    code = "import sys; from cbir.cli import cli; assert 'tensorflow' not in sys.modules and 'faiss' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], env=cli_env).returncode == 0
    for args in (["--help"], ["index", "--help"], ["query", "--help"], ["status"]):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == 0, proc.stderr
    probe = ("import sys; from cbir.cli import main; sys.argv=['cbir','status'];\n"
             "try: main()\nexcept SystemExit: pass\n"
             "assert 'tensorflow' not in sys.modules and 'faiss' not in sys.modules, 'heavy import'")
    assert subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True).returncode == 0
