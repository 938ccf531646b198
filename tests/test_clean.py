"""`cbir clean`, `cbir undo`, `cbir history` on real files with the real default model."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo
from tests.datasets import render_document, scan_crop

PHOTOS = {"astronaut": "astronaut.jpg", "coffee": "food/coffee.jpg", "china": "trips/china.jpg",
          "camera": "camera.png"}


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tree(tmp_path, photos) -> Path:
    """Real photos plus parts of a real scanned page; two scans share a name to force a collision."""
    root = tmp_path / "pictures"
    for name, rel in PHOTOS.items():
        save_photo(photos[name], root / rel)
    rng = np.random.default_rng(6)
    for rel in ("scans/a/invoice.png", "scans/b/invoice.png", "letter.png", "note.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        scan_crop(photos["page"], rng).save(root / rel)
    return root


def index(root: Path, env: dict) -> None:
    proc = run_cbir(["index", str(root), "-q"], env)
    assert proc.returncode == 0, proc.stderr


def moves_of(stdout: str) -> list[tuple[str, str, str, str]]:
    return [tuple(line.split("\t")) for line in stdout.splitlines() if line]


def test_dry_run_then_yes_moves_exactly_the_listed_files(tree, cli_env):
    index(tree, cli_env)
    before = snapshot(tree)
    dry = run_cbir(["clean", "--category", "receipt", "--min-confidence", "0.5"], cli_env)
    assert dry.returncode == 0, dry.stderr
    assert snapshot(tree) == before  # nothing moved
    listed = moves_of(dry.stdout)
    assert {Path(src).name for _, _, src, _ in listed} == {"invoice.png", "letter.png", "note.png"}
    assert len(listed) == 4 and all(cat == "receipt" and float(conf) >= 0.5 for cat, conf, _, _ in listed)
    assert "would move 4 image(s): receipt 4" in dry.stderr and "dry run" in dry.stderr
    targets = sorted(Path(dst).name for *_, dst in listed)
    assert targets == ["invoice-1.png", "invoice.png", "letter.png", "note.png"]  # collision: suffix

    done = run_cbir(["clean", "--category", "receipt", "--min-confidence", "0.5", "--yes"], cli_env)
    assert done.returncode == 0, done.stderr
    assert moves_of(done.stdout) == listed
    after = snapshot(tree)
    assert sorted(after.values()) == sorted(before.values())  # same bytes, nothing lost or doubled
    for _, _, src, dst in listed:
        assert not os.path.exists(src) and os.path.exists(dst)
        assert Path(dst).parent == tree / "receipt"
    assert "recorded as run 1" in done.stderr

    # The index follows the files without re-embedding: a query finds them at their new paths.
    query = run_cbir(["query", str(tree / "receipt" / "letter.png"), "-k", "3", "--json"], cli_env)
    hits = json.loads(query.stdout)
    assert hits[0]["path"] == str(tree / "receipt" / "letter.png") and hits[0]["score"] == 1.0
    reindex = run_cbir(["index", "--json", "-q"], cli_env)
    summary = json.loads(reindex.stdout)
    assert summary["added"] == summary["updated"] == summary["removed"] == 0

    again = run_cbir(["clean", "--category", "receipt", "--yes"], cli_env)
    assert again.returncode == 0 and again.stdout == ""
    assert "moved 0 image(s)" in again.stderr and "4 already in a category folder" in again.stderr

    history = run_cbir(["history", "--json"], cli_env)
    runs = json.loads(history.stdout)
    assert [(r["id"], r["state"], r["moved"], r["categories"]) for r in runs] == [
        (1, "done", 4, ["receipt"]), (2, "done", 0, ["receipt"])]


def test_undo_restores_the_tree_byte_for_byte_even_after_a_rename(tree, cli_env):
    index(tree, cli_env)
    before = snapshot(tree)
    proc = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes"], cli_env)
    assert proc.returncode == 0, proc.stderr
    moved = moves_of(proc.stdout)
    # food/coffee.jpg stays: the default model judges an espresso cup none of its categories
    assert len(moved) == 7 and "1 left in place as belonging to no category" in proc.stderr
    renamed_from = Path(moved[0][3])
    renamed_from.rename(renamed_from.with_name("renamed-by-user" + renamed_from.suffix))

    dry = run_cbir(["undo"], cli_env)
    assert dry.returncode == 0 and "would put back 7 of 7" in dry.stderr
    assert snapshot(tree) != before
    undo = run_cbir(["undo", "--yes"], cli_env)
    assert undo.returncode == 0, undo.stderr
    assert snapshot(tree) == before  # every path and every byte as before; empty folders may remain
    runs = json.loads(run_cbir(["history", "--json"], cli_env).stdout)
    assert runs[0]["state"] == "undone" and runs[0]["undone"] == 7
    assert run_cbir(["undo", "--yes"], cli_env).returncode == 2  # nothing left to undo
    # The index is back on the original paths.
    hits = json.loads(run_cbir(["query", str(tree / "letter.png"), "-k", "1", "--json"], cli_env).stdout)
    assert hits[0]["path"] == str(tree / "letter.png")


def test_undo_reports_a_missing_file_and_a_taken_path_and_loses_nothing(tree, cli_env, tmp_path):
    index(tree, cli_env)
    proc = run_cbir(["clean", "--category", "receipt", "--min-confidence", "0.5", "--yes"], cli_env)
    moved = moves_of(proc.stdout)
    gone_src, gone_dst = Path(moved[0][2]), Path(moved[0][3])
    gone_dst.rename(tmp_path / "taken-away.png")  # the user moved it out of cbir's reach
    taken_src, taken_dst = Path(moved[1][2]), Path(moved[1][3])
    taken_src.parent.mkdir(parents=True, exist_ok=True)
    taken_src.write_bytes(b"a new file the user saved here")

    undo = run_cbir(["undo", "--yes"], cli_env)
    assert undo.returncode == 10, undo.stderr
    assert f"cannot put back {gone_src}: not found" in undo.stderr
    assert f"cannot put back {taken_src}: {taken_src} is taken" in undo.stderr
    assert taken_src.read_bytes() == b"a new file the user saved here"  # never overwritten
    assert taken_dst.exists()  # left where it was
    for _, _, src, _ in moved[2:]:
        assert os.path.exists(src)
    runs = json.loads(run_cbir(["history", "--json"], cli_env).stdout)
    assert runs[0]["state"] == "partly undone"

    # Once the user clears the way, the same undo finishes the job.
    (tmp_path / "taken-away.png").rename(gone_dst)
    taken_src.rename(tmp_path / "user-file.bin")
    again = run_cbir(["undo", "1", "--yes"], cli_env)
    assert again.returncode == 0, again.stderr
    assert gone_src.exists() and taken_src.exists()
    assert json.loads(run_cbir(["history", "--json"], cli_env).stdout)[0]["state"] == "undone"


def test_dest_on_another_filesystem_copies_verifies_and_keeps_times(tree, cli_env, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no writable second filesystem at /dev/shm")
    dest = Path(shm / f"cbir-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        index(tree, cli_env)
        before = snapshot(tree)
        mtimes = {p: os.stat(p).st_mtime_ns for p in tree.rglob("*.png")}
        proc = run_cbir(["clean", "--category", "receipt", "--min-confidence", "0.5", "--dest", str(dest), "--yes"],
                        cli_env)
        assert proc.returncode == 0, proc.stderr
        moved = moves_of(proc.stdout)
        assert len(moved) == 4
        for _, _, src, dst in moved:
            assert Path(dst).parent == dest / "receipt" and os.stat(dst).st_mtime_ns == mtimes[Path(src)]
            assert not os.path.exists(src)
        assert not list(dest.rglob(".*cbir-partial"))
        assert run_cbir(["undo", "--yes"], cli_env).returncode == 0
        assert snapshot(tree) == before
        assert {p: os.stat(p).st_mtime_ns for p in tree.rglob("*.png")} == mtimes
    finally:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)


def test_refusals_are_one_line_errors(tree, cli_env, tmp_path):
    assert run_cbir(["clean", "--category", "receipt"], cli_env).returncode == 5  # no index yet
    index(tree, cli_env)
    cases = [
        (["clean", "--category", "cats"], 2, "unknown category 'cats'"),
        (["clean", "--category", "receipt", "--dest", str(tree / "letter.png")], 2, "is a file"),
        (["clean", "--category", "receipt", "--model", "imagenet"], 2, "no categories"),  # same trunk, no head
        (["clean", "--category", "other"], 2, "clean never moves those"),
        (["undo", "7"], 2, "no clean run 7"),
    ]
    plain = tmp_path / "plain-index"
    assert run_cbir(["index", str(tree), "--index", str(plain), "--model", "imagenet", "-q"], cli_env).returncode == 0
    cases.append((["clean", "--category", "receipt", "--index", str(plain)], 2, "no categories"))
    before = snapshot(tree)
    for args, code, message in cases:
        proc = run_cbir(args, cli_env)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(tree) == before


def test_clean_indexes_new_files_under_in_first(tree, cli_env, photos):
    index(tree, cli_env)
    late = tree / "inbox" / "late-scan.png"
    late.parent.mkdir()
    scan_crop(photos["page"], np.random.default_rng(11)).save(late)
    link = tree / "inbox" / "shortcut.png"
    link.symlink_to(os.path.relpath(late, link.parent))
    proc = run_cbir(["clean", "--category", "receipt", "--min-confidence", "0.5", "--in", str(tree / "inbox"),
                     "--yes"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "2 added" in proc.stderr
    assert f"skipped {link}: symbolic link, not moved" in proc.stderr and link.is_symlink()
    ((category, confidence, src, dst),) = moves_of(proc.stdout)
    assert (category, src, dst) == ("receipt", str(late), str(tree / "receipt" / "late-scan.png"))
    assert float(confidence) >= 0.5
    status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
    assert status["roots"] == [str(tree)]  # a folder inside a root does not become a root


@pytest.mark.slow
@pytest.mark.parametrize("rerun_first", [False, True], ids=["undo", "rerun-then-undo"])
def test_a_clean_killed_mid_run_loses_nothing_and_undo_restores_everything(tmp_path, cli_env, rerun_first):
    root = tmp_path / "many"
    rng = np.random.default_rng(5)
    pages = [render_document(rng) for _ in range(4)]
    for i in range(400):  # byte-identical copies index fast (their vectors are reused)
        folder = root / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        pages[i % 4].save(folder / f"scan_{i:03d}.png")
    index(root, cli_env)
    before = snapshot(root)
    journal = Path(cli_env["CBIR_HOME"]) / "index" / "journal.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "cbir", "clean", "--category", "all", "--min-confidence", "0",
                             "--yes", "-q"],
                            env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    moved = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal, timeout=0.1) as conn:
                    moved = conn.execute("SELECT COUNT(*) FROM moves WHERE state = 'moved'").fetchone()[0]
            except sqlite3.Error:
                moved = 0
            if moved >= 20:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Every file is at its old path or its new one, exactly once; except that a kill between a move's two steps
    # (the new name linked, the old one not yet removed) leaves that one file under both names, one inode, which
    # the next clean or undo settles.
    after = snapshot(root)
    doubled = [p for p in root.rglob("*") if p.is_file() and p.stat().st_nlink > 1]
    assert not doubled or (len(doubled) == 2 and doubled[0].stat().st_ino == doubled[1].stat().st_ino)
    assert sorted(after.values()) == sorted([*before.values(), *(after[str(doubled[0].relative_to(root))]
                                                                  for _ in doubled[1:])])
    assert sum(1 for rel in after if not rel.startswith("d")) >= 20  # moved into category folders

    history = json.loads(run_cbir(["history", "--json"], cli_env).stdout)
    assert history[0]["state"] == "interrupted"  # killed: nobody is running it, and nobody marked it finished

    if rerun_first:  # a rerun settles the interrupted run and moves the rest
        rerun = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes", "-q"], cli_env)
        assert rerun.returncode == 0, rerun.stderr
        assert "settled 1 interrupted clean or undo run" in rerun.stderr
        after = snapshot(root)
        assert sorted(after.values()) == sorted(before.values())
        assert not any(rel.startswith("d") for rel in after)  # every page filed (receipt, by most engines)
        assert run_cbir(["undo", "--yes", "-q"], cli_env).returncode == 0  # the rerun
    undo = run_cbir(["undo", "--yes", "-q"], cli_env)  # the killed run
    assert undo.returncode == 0, undo.stderr
    assert snapshot(root) == before
    assert all(run["state"] == "undone" for run in json.loads(run_cbir(["history", "--json"], cli_env).stdout))
