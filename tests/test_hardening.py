"""cbir in a hostile world: links out of the tree, hostile names and models, full and read-only disks,
damaged index files, kills mid-undo. Each test reproduces a defect found that way, with the real model,
SQLite files, FAISS index and real files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo
from tests.datasets import render_document
from tests.namespaces import python_in_namespace, run_in_namespace
from tests.test_clean import snapshot


def _index(root: Path, env: dict, *extra: str) -> dict:
    proc = run_cbir(["index", str(root), "-q", "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _index_dir(env: dict) -> Path:
    return Path(env["CBIR_HOME"]) / "index"


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert all(line.startswith("cbir: ") for line in proc.stderr.splitlines() if line.strip()), proc.stderr


# -- 1. symbolic links never let a move leave the indexed folders ---------------------------------------

def test_files_reached_through_a_linked_folder_are_indexed_and_queried_but_never_moved(tmp_path, photos, cli_env):
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    save_photo(photos["china"], elsewhere / "china.jpg")
    save_photo(photos["astronaut"], root / "astronaut.jpg")
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    assert _index(root, cli_env)["added"] == 2
    linked = root / "link" / "china.jpg"
    hits = json.loads(run_cbir(["query", str(linked), "-k", "1", "--json"], cli_env).stdout)
    assert hits[0]["path"] == str(linked) and hits[0]["score"] == 1.0  # indexed and queried

    before = snapshot(elsewhere)
    proc = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(elsewhere) == before and (elsewhere / "china.jpg").is_file()
    assert f"skipped {linked}: reached through a symbolic link, not moved" in proc.stderr
    assert (root / "people" / "astronaut.jpg").is_file()  # what lives in the tree is still cleaned


def test_a_category_folder_that_is_a_link_is_never_used(tmp_path, photos, cli_env):
    root, target = tmp_path / "photos", tmp_path / "somewhere"
    target.mkdir()
    save_photo(photos["china"], root / "china.jpg")
    _index(root, cli_env)
    (root / "landscape").symlink_to(target, target_is_directory=True)
    proc = run_cbir(["clean", "--category", "landscape", "--min-confidence", "0", "--yes"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert list(target.iterdir()) == [] and (root / "china.jpg").is_file()
    assert f"category folder {root / 'landscape'} is a symbolic link or not a folder, not moved" in proc.stderr


def test_a_folder_swapped_for_a_link_after_planning_stops_that_move(tmp_path, photos, cli_env, monkeypatch):
    """The check is made at move time, by the move itself: not only when the plan is made."""
    from cbir.moves.clean import execute_clean, plan_clean
    from cbir.moves.session import MoveSession
    from indexer.model import resolve_model

    root, outside = tmp_path / "photos", tmp_path / "outside"
    outside.mkdir()
    save_photo(photos["astronaut"], root / "astronaut.jpg")
    save_photo(photos["china"], root / "china.jpg")
    _index(root, cli_env)
    monkeypatch.setenv("CBIR_HOME", cli_env["CBIR_HOME"])
    with MoveSession.open(_index_dir(cli_env)) as session:
        chosen = resolve_model("default").classes
        plan = plan_clean(session.store, chosen, chosen, session.roots, session.roots, None, 0.0)
        assert {Path(m.dst).parent.name for m in plan.moves} == {"people", "landscape"}
        (root / "people").symlink_to(outside, target_is_directory=True)  # after the plan, before the move
        result = execute_clean(plan, session.journal, session.store, chosen, None, session.roots)
    assert list(outside.iterdir()) == [] and (root / "astronaut.jpg").is_file()
    assert [Path(p).name for p, _ in result.failed] == ["astronaut.jpg"]
    assert "symbolic link" in result.failed[0][1]
    assert (root / "landscape" / "china.jpg").is_file()


def test_undo_does_not_trust_an_edited_journal(tmp_path, photos, cli_env):
    root, outside = tmp_path / "photos", tmp_path / "outside"
    outside.mkdir()
    save_photo(photos["china"], root / "china.jpg")
    _index(root, cli_env)
    assert run_cbir(["clean", "--category", "landscape", "--min-confidence", "0", "--yes"], cli_env).returncode == 0
    with sqlite3.connect(_index_dir(cli_env) / "journal.sqlite") as conn:
        conn.execute("UPDATE moves SET src = ?", (str(outside / "china.jpg"),))
    proc = run_cbir(["undo", "--yes"], cli_env)
    assert proc.returncode == 10, proc.stderr
    assert "not inside an indexed folder" in proc.stderr
    assert list(outside.iterdir()) == [] and (root / "landscape" / "china.jpg").is_file()
    _no_traceback(proc)


# -- 2. class names are folder names: a model with hostile ones is refused ----------------------------

@pytest.mark.parametrize("name", ["..", "/abs/path", "../../x", "a/b", ".", "", ".hidden", "x\ny", "all",
                                  "a\u202eb", "x" * 65])
def test_a_model_with_a_hostile_class_name_is_refused_when_loaded(tmp_path, name):
    from cbir.errors import ModelError
    from indexer.model import default_model_dir, resolve_model

    folder = tmp_path / "model"
    shutil.copytree(default_model_dir(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["classes"][0] = name
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be a category"):
        resolve_model(str(folder))


def test_clean_with_a_hostile_model_moves_nothing_and_says_why(tmp_path, photos, cli_env):
    from indexer.model import default_model_dir

    root = tmp_path / "photos"
    save_photo(photos["coffee"], root / "coffee.jpg")
    _index(root, cli_env)
    model = tmp_path / "shared-model"
    shutil.copytree(default_model_dir(), model)
    card = json.loads((model / "model_card.json").read_text())
    card["classes"] = [".." if c == "food" else c for c in card["classes"]]
    (model / "model_card.json").write_text(json.dumps(card))
    before = snapshot(tmp_path)
    for args in (["clean", "--category", "all", "--min-confidence", "0", "--yes", "--model", str(model)],
                 ["index", str(root), "--model", str(model), "--index", str(tmp_path / "other-index")]):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == 9, proc.stderr
        assert "lists the class '..', which cannot be a category" in proc.stderr
        _no_traceback(proc)
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("cbir-home", "other-index"))}
    assert after == {k: v for k, v in before.items() if not k.startswith("cbir-home")}


# -- 3 and 7. any file name: not UTF-8, tabs, newlines; stored, printed and moved exactly ----------------

HOSTILE_NAMES = [b"caf\xe9.jpg", b"x\t0.9999\tfake.jpg", b"two\nlines.jpg", b'quote".jpg']


def _hostile_tree(tmp_path: Path, photos) -> tuple[Path, list[Path]]:
    """Five photos the default model files under a category (people, landscape, receipt), four hostile names."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(3)
    paths = []
    for name, source in zip(HOSTILE_NAMES, ("astronaut", "camera", "china", "document"), strict=True):
        path = Path(os.fsdecode(os.fsencode(root) + b"/" + name))
        if source == "document":
            render_document(rng).save(path, "JPEG")
        else:
            save_photo(photos[source], path)
        paths.append(path)
    render_document(rng).save(root / "plain.jpg", "JPEG")
    return root, paths


def test_names_that_are_not_utf8_or_hold_tabs_and_newlines_are_indexed_queried_and_printed_exactly(
        tmp_path, photos, cli_env):
    root, paths = _hostile_tree(tmp_path, photos)
    assert _index(root, cli_env)["added"] == 5
    cafe = paths[0]

    plain = run_cbir(["query", str(cafe), "-k", "5"], cli_env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 5 and all(line.count("\t") == 1 for line in lines)  # no forged columns or records
    assert lines[0] == f'1.0000\t"{root}/caf\\351.jpg"'
    shown = {line.split("\t")[1] for line in lines}
    assert f'"{root}/x\\t0.9999\\tfake.jpg"' in shown and f'"{root}/two\\nlines.jpg"' in shown
    assert f'"{root}/quote\\".jpg"' in shown and f"{root}/plain.jpg" in shown

    raw = run_cbir(["query", str(cafe), "-k", "5", "-0"], cli_env, text=False)
    fields = raw.stdout.split(b"\0")
    assert fields[-1] == b"" and len(fields) == 11
    assert {os.fsencode(p) for p in paths} | {os.fsencode(root / "plain.jpg")} == set(fields[1:-1:2])
    assert fields[1] == os.fsencode(cafe)

    hits = json.loads(run_cbir(["query", str(cafe), "-k", "5", "--json"], cli_env).stdout)
    assert {os.fsencode(h["path"]) for h in hits} == set(fields[1:-1:2])  # JSON round-trips the bytes too


def test_hostile_names_are_moved_and_put_back_exactly(tmp_path, photos, cli_env):
    root, _paths = _hostile_tree(tmp_path, photos)
    _index(root, cli_env)
    before = snapshot(root)
    proc = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes", "-0"], cli_env, text=False)
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split(b"\0")[:-1]
    records = [fields[i : i + 4] for i in range(0, len(fields), 4)]
    assert len(records) == 5
    for category, confidence, src, dst in records:
        assert not os.path.lexists(src) and os.path.isfile(dst)
        assert os.path.basename(dst) == os.path.basename(src) and float(confidence) >= 0
        assert os.path.basename(os.path.dirname(dst)) == category
    undo = run_cbir(["undo", "--yes"], cli_env)
    assert undo.returncode == 0, undo.stderr
    assert snapshot(root) == before


# -- 4. disk full: one clear error naming the filesystem, and the index usable once space is freed --------

def test_a_full_disk_gives_one_clear_error_and_the_index_recovers(tmp_path, cli_env):
    root = tmp_path / "pages"
    page = root / "page-000.png"
    root.mkdir()
    render_document(np.random.default_rng(1)).save(page)
    for i in range(1, 400):  # byte-identical copies: quick to index, each one a row and a vector
        shutil.copy(page, root / f"page-{i:03d}.png")
    index_dir = tmp_path / "small-disk"
    index_dir.mkdir()
    results = run_in_namespace(
        f"mount -t tmpfs -o size=600k tmpfs {index_dir}",
        [["index", str(root), "--index", str(index_dir), "-q"],
         ["index", str(root), "--index", str(index_dir), "-q", "--json"],
         ["query", str(page), "--index", str(index_dir), "-k", "3", "--json"]],
        cli_env, tmp_path / "ns", between={1: f"mount -o remount,size=64m {index_dir}"})
    full, again, query = results
    assert full.returncode == 12, full.stderr
    assert f"no space left on the filesystem at {index_dir}" in full.stderr
    assert len(full.stderr.strip().splitlines()) <= 3  # the error, not a cascade of them
    _no_traceback(full)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] + json.loads(again.stdout)["unchanged"] == 400
    assert query.returncode == 0 and json.loads(query.stdout)[0]["path"] == str(page)


def test_a_faiss_file_that_does_not_fit_on_the_disk_is_a_clear_error(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    code = (
        "import json, numpy as np, faiss\n"
        "from pathlib import Path\n"
        "from cbir.errors import DiskFullError\n"
        "from index_store.atomic import atomic_write\n"
        "from index_store.faiss_index import write_index\n"
        "index = faiss.IndexFlatIP(64); index.add(np.random.rand(2000, 64).astype('float32'))\n"
        f"target = Path({str(folder)!r}) / 'vectors.faiss'\n"
        "try:\n"
        "    atomic_write(target, lambda tmp: write_index(index, tmp)); out = 'written'\n"
        "except DiskFullError as exc:\n"
        "    out = str(exc)\n"
        "print(json.dumps({'out': out, 'left': sorted(p.name for p in target.parent.iterdir())}))\n"
    )
    result = python_in_namespace(f"mount -t tmpfs -o size=64k tmpfs {folder}", code, dict(os.environ))
    assert result["out"].startswith(f"no space left on the filesystem at {folder}")
    assert result["left"] == []  # no temporary file left behind


# -- 5. read-only media: reading works, writing says it is read-only -----------------------------------

def test_a_read_only_index_can_be_queried_and_refuses_writes_clearly(tmp_path, photos, cli_env):
    root = tmp_path / "photos"
    save_photo(photos["china"], root / "china.jpg")
    save_photo(photos["astronaut"], root / "astronaut.jpg")
    _index(root, cli_env)
    assert run_cbir(["clean", "--category", "landscape", "--min-confidence", "0", "--yes"], cli_env).returncode == 0
    index_dir = _index_dir(cli_env)
    cmds = [["status", "--json"], ["query", str(root / "astronaut.jpg"), "-k", "2", "--json"], ["history", "--json"],
            ["index", str(root)], ["clean", "--category", "landscape"], ["undo", "--yes"]]
    results = run_in_namespace(f"mount --bind {index_dir} {index_dir} && mount -o remount,bind,ro {index_dir}",
                               cmds, cli_env, tmp_path / "ns")
    status, query, history, index, clean, undo = results
    assert status.returncode == 0 and json.loads(status.stdout)["images"] == 2, status.stderr
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)[0]["path"] == str(root / "astronaut.jpg")
    assert history.returncode == 0 and json.loads(history.stdout)[0]["moved"] == 1, history.stderr
    for proc in (index, clean, undo):
        assert proc.returncode == 11, (proc.args, proc.stderr)
        assert "cannot be written" in proc.stderr and "it can be queried" in proc.stderr
        _no_traceback(proc)


def test_a_read_only_photo_tree_is_reported_file_by_file(tmp_path, photos, cli_env):
    root = tmp_path / "photos"
    save_photo(photos["china"], root / "china.jpg")
    save_photo(photos["astronaut"], root / "astronaut.jpg")
    _index(root, cli_env)
    before = snapshot(root)
    (clean,) = run_in_namespace(f"mount --bind {root} {root} && mount -o remount,bind,ro {root}",
                                [["clean", "--category", "all", "--min-confidence", "0", "--yes"]], cli_env,
                                tmp_path / "ns")
    assert clean.returncode == 10, clean.stderr  # nothing it planned was moved: a failure
    for name in ("china.jpg", "astronaut.jpg"):
        assert f"not moved {root / name}: " in clean.stderr
    assert clean.stderr.count("Read-only file system") == 2
    _no_traceback(clean)
    assert snapshot(root) == before


# -- 6. an undo killed between putting a file back and removing its other name is settled -------------

def test_an_undo_killed_mid_move_is_settled_by_the_next_one(tmp_path, photos, cli_env):
    root = tmp_path / "photos"
    for name in ("camera", "astronaut", "china"):
        save_photo(photos[name], root / f"{name}.jpg")
    _index(root, cli_env)
    before = snapshot(root)
    assert run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes"], cli_env).returncode == 0
    # Die exactly after the file got its old name back and before the other name is removed.
    killer = ("import os, signal, sys\n"
              "import cbir.moves.safe_move as m\n"
              "m._unlink_durably = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
              "from cbir.cli import main\n"
              "sys.argv = ['cbir', 'undo', '--yes']\n"
              "main()\n")
    killed = subprocess.run([sys.executable, "-c", killer], env=cli_env, capture_output=True, text=True)
    assert killed.returncode == -9
    doubled = [p for p in root.rglob("*.jpg") if p.stat().st_nlink == 2]
    assert len(doubled) == 2  # the photo sits under both names
    history = json.loads(run_cbir(["history", "--json"], cli_env).stdout)
    assert history[0]["state"] == "interrupted"
    undo = run_cbir(["undo", "--yes"], cli_env)
    assert undo.returncode == 0, undo.stderr
    assert "settled 1 interrupted clean or undo run" in undo.stderr
    assert snapshot(root) == before
    assert all(p.stat().st_nlink == 1 for p in root.rglob("*.jpg"))
    assert json.loads(run_cbir(["history", "--json"], cli_env).stdout)[0]["state"] == "undone"


# -- 8 and 9. damaged derived files are noticed and rebuilt; a damaged journal is named ---------------

def test_a_scribbled_faiss_file_is_detected_and_rebuilt(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    query = ["query", str(photo_tree / "coffee.jpg"), "-k", "5", "--json", "--exclude-self"]
    expected = json.loads(run_cbir(query, cli_env).stdout)
    faiss_file = _index_dir(cli_env) / "vectors.faiss"
    data = bytearray(faiss_file.read_bytes())
    rng = np.random.default_rng(0)
    data[200:-200] = rng.bytes(len(data) - 400)  # the header stays valid; the vectors are noise
    faiss_file.write_bytes(bytes(data))
    proc = run_cbir(query, cli_env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == expected
    assert "does not match" in proc.stderr and "rebuilding it from the catalog" in proc.stderr
    rerun = run_cbir(["index", str(photo_tree), "--json"], cli_env)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["unchanged"] == 10
    manifest = json.loads((_index_dir(cli_env) / "manifest.json").read_text())
    from index_store.hashing import file_crc32

    assert manifest["faiss_crc32"] == file_crc32(faiss_file)  # repaired on disk, not only in memory
    clean_query = run_cbir(query, cli_env)
    assert json.loads(clean_query.stdout) == expected and "rebuilding" not in clean_query.stderr


@pytest.mark.parametrize("damage", [{"index_type": 5}, {"index_type": "ivf", "nlist": 16, "nprobe": 4},
                                    "not json at all", {"count": "ten"}, [1, 2, 3]])
def test_a_bad_manifest_is_rebuilt_by_every_command(photo_tree, cli_env, damage):
    _index(photo_tree, cli_env)
    manifest_file = _index_dir(cli_env) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    if isinstance(damage, dict):
        manifest.update(damage)
        manifest_file.write_text(json.dumps(manifest))
    else:
        manifest_file.write_text(damage if isinstance(damage, str) else json.dumps(damage))
    for args in (["status"], ["query", str(photo_tree / "chelsea.jpg"), "-k", "2"], ["index", str(photo_tree)]):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == 0, (args, proc.stderr)
        _no_traceback(proc)
    repaired = json.loads(manifest_file.read_text())
    assert repaired["index_type"] == "flat" and repaired["count"] == 10


def test_a_damaged_journal_is_named_and_can_be_moved_aside(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    journal = _index_dir(cli_env) / "journal.sqlite"
    journal.write_bytes(b"this is not a database, it was damaged" * 100)
    for args in (["history"], ["undo", "--yes"], ["clean", "--category", "landscape"]):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == 13, (args, proc.stderr)
        assert f"the clean journal {journal} is damaged" in proc.stderr and "undo history" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        _no_traceback(proc)
    journal.rename(journal.with_name("journal.sqlite.damaged"))
    proc = run_cbir(["clean", "--category", "landscape", "--min-confidence", "0", "--yes"], cli_env)
    assert proc.returncode == 0, proc.stderr


# -- 10. a clean that moved nothing it planned is a failure, as for undo --------------------------------

def test_clean_exits_10_when_planned_moves_fail(tmp_path, photos, cli_env):
    root = tmp_path / "photos"
    save_photo(photos["china"], root / "china.jpg")
    _index(root, cli_env)
    (root / "landscape").write_text("a file where the category folder would go\n")
    proc = run_cbir(["clean", "--category", "landscape", "--min-confidence", "0", "--yes"], cli_env)
    assert proc.returncode == 10, proc.stderr
    assert "1 of 1 planned file(s) could not be moved" in proc.stderr
    assert (root / "china.jpg").is_file()
    _no_traceback(proc)


# -- the low ones ----------------------------------------------------------------------------------------

def test_temporary_files_of_a_killed_publish_are_removed_by_the_next_writer(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    index_dir = _index_dir(cli_env)
    stale = [index_dir / ".vectors.faiss.abc123.tmp", index_dir / ".manifest.json.xyz.tmp"]
    for path in stale:
        path.write_bytes(b"left by a kill")
    _index(photo_tree, cli_env)
    assert not any(p.exists() for p in stale)


def test_written_index_files_follow_the_umask_not_0600(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    for name in ("manifest.json", "vectors.faiss"):
        mode = stat.S_IMODE((_index_dir(cli_env) / name).stat().st_mode)
        assert mode & 0o044 == 0o044, (name, oct(mode))  # readable by others under a 022 umask


def test_a_100_megapixel_camera_jpeg_is_indexed(tmp_path, cli_env):
    from PIL import Image

    root = tmp_path / "camera"
    root.mkdir()
    gradient = np.linspace(0, 255, 10_000, dtype=np.uint8)
    Image.fromarray(np.broadcast_to(gradient, (10_000, 10_000))).save(root / "big.jpg", quality=80)
    summary = _index(root, cli_env)
    assert summary["added"] == 1 and summary["skipped"] == {}


def test_identical_copies_in_one_batch_are_decoded_once(tmp_path, photos, embedder, monkeypatch):
    import indexer.pipeline as pipeline
    from index_store.writer import IndexStore, fixed_claim

    root = tmp_path / "copies"
    first = save_photo(photos["coffee"], root / "a.jpg")
    for name in ("b.jpg", "c.jpg", "d.jpg"):
        shutil.copy(first, root / name)
    save_photo(photos["chelsea"], root / "e.jpg")
    decoded = []
    real_decode = pipeline.decode
    monkeypatch.setattr(pipeline, "decode", lambda data, *a: decoded.append(len(data)) or real_decode(data, *a))
    with IndexStore.open(tmp_path / "index", fixed_claim(embedder.model_id, embedder.dim)) as store:
        summary = pipeline.IndexRun(store, embedder, batch_size=8).run([str(root)])
        vectors = {row.path: store.vector(row.id) for row in map(store.row_by_path, map(str, root.iterdir()))}
    assert summary.added == 5 and len(decoded) == 2
    assert all(np.array_equal(vectors[str(root / n)], vectors[str(first)]) for n in ("b.jpg", "c.jpg", "d.jpg"))


def test_scores_never_exceed_one(photo_tree, cli_env):
    shutil.copy(photo_tree / "moon.jpg", photo_tree / "moon-copy.jpg")
    _index(photo_tree, cli_env)
    hits = json.loads(run_cbir(["query", str(photo_tree / "moon.jpg"), "-k", "11", "--json"], cli_env).stdout)
    assert all(-1.0 <= h["score"] <= 1.0 for h in hits)
    assert hits[0]["score"] == 1.0 and hits[1]["score"] > 0.9999  # the copy shares the stored vector


def test_library_warnings_are_one_line(tmp_path, cli_env):
    """A JPEG whose EXIF points past its end makes Pillow warn; cbir shows that as one line and indexes it."""
    import io
    import struct

    from PIL import Image

    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 100, 0x1000)
            + struct.pack("<I", 0))  # one tag (Make) whose 100 bytes lie far past the end of the block
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "JPEG", exif=b"Exif\x00\x00" + tiff)
    root = tmp_path / "odd"
    root.mkdir()
    (root / "odd-exif.jpg").write_bytes(buf.getvalue())
    proc = run_cbir(["index", str(root), "--json"], cli_env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["added"] == 1, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "Skipping tag" in line]
    assert warnings == ["cbir: warning: Tag data larger than file. Skipping tag 271"], proc.stderr
    _no_traceback(proc)
