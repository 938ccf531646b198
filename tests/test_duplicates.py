"""`cbir duplicates` with the real model, index and files: copies grouped, the best kept, moves undone."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import GALLERY, run_cbir, save_photo
from tests.datasets import render_document
from tests.test_clean import snapshot


@pytest.fixture
def copies(tmp_path, photos) -> Path:
    """One photo five ways (the original, re-encoded, shrunk, cropped, stored sideways), and other photos."""
    root = tmp_path / "phone"
    for folder in ("DCIM", "chat", "scans"):
        (root / folder).mkdir(parents=True)
    original = save_photo(photos["astronaut"], root / "DCIM" / "astronaut.jpg", quality=95)
    image = Image.open(original)
    image.save(root / "chat" / "IMG-0001.jpg", quality=30)
    image.resize((image.width * 2 // 5, image.height * 2 // 5)).save(root / "chat" / "IMG-0002.jpg", quality=80)
    w, h = image.size
    image.crop((w // 10, h // 10, w * 9 // 10, h * 9 // 10)).save(root / "chat" / "crop.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    image.rotate(90, expand=True).save(root / "chat" / "sideways.jpg", quality=90, exif=exif)
    for name in ("chelsea", "coffee", "china", "rocket", "camera"):
        save_photo(photos[name], root / "DCIM" / f"{name}.jpg")
    rng = np.random.default_rng(4)
    for i in range(2):  # two different printed pages: alike, not copies
        render_document(rng).save(root / "scans" / f"page-{i}.png")
    return root


def _groups(env: dict, *extra: str) -> dict:
    proc = run_cbir(["duplicates", "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_copies_are_grouped_with_the_original_kept_and_look_alikes_are_not(copies, cli_env):
    assert run_cbir(["index", str(copies), "-q"], cli_env).returncode == 0
    report = _groups(cli_env)
    assert len(report["groups"]) == 1, report["groups"]
    group = report["groups"][0]
    names = [Path(m["path"]).name for m in group["members"]]
    assert names[0] == "astronaut.jpg" and group["keeper"] == str(copies / "DCIM" / "astronaut.jpg")
    assert set(names) == {"astronaut.jpg", "IMG-0001.jpg", "IMG-0002.jpg", "crop.jpg", "sideways.jpg"}
    keeper = group["members"][0]
    assert keeper["role"] == "keep" and keeper["width"] == 512 and keeper["quality"] >= 90
    assert all(m["role"] == "copy" and 0.7 <= m["similarity"] <= 1.0 and m["structure"] >= 0.9
               for m in group["members"][1:])
    assert group["reason"]  # e.g. "least compressed: quality 95 (next 90)"
    # The two different printed pages, the cat, the espresso: each alone.
    grouped = {Path(m["path"]).name for m in group["members"]}
    assert not grouped & {"page-0.png", "page-1.png", "chelsea.jpg", "coffee.jpg"}

    plain = run_cbir(["duplicates"], cli_env)
    lines = [line.split("\t") for line in plain.stdout.splitlines()]
    assert lines[0] == ["1", "keep", "1.0000", str(copies / "DCIM" / "astronaut.jpg")]
    assert [line[1] for line in lines[1:]] == ["copy"] * 4
    assert "group 1: keeping" in plain.stderr and "1 group(s), 4 extra copies" in plain.stderr


def _facts_rows(env: dict) -> int:
    with sqlite3.connect(Path(env["CBIR_HOME"]) / "index" / "catalog.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM picture_facts").fetchone()[0]


def test_a_scan_reads_what_indexing_stored_and_an_older_index_gets_it(copies, cli_env):
    assert run_cbir(["index", str(copies), "-q"], cli_env).returncode == 0
    assert _facts_rows(cli_env) == 12  # one per content: every file here is different
    first = _groups(cli_env)["groups"]
    # A scan decodes no file: garbage in place of the copies (same size and time, so not reindexed) changes
    # nothing it finds.
    for name in ("IMG-0001.jpg", "crop.jpg"):
        path = copies / "chat" / name
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _groups(cli_env)["groups"] == first
    # An index made before facts were stored: the scan decodes what it needs (the two garbage files are
    # left out), and the next `cbir index` stores the facts without embedding anything again.
    with sqlite3.connect(Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM picture_facts")
    older = _groups(cli_env)["groups"]
    assert [sorted(Path(m["path"]).name for m in g["members"]) for g in older] == [
        ["IMG-0002.jpg", "astronaut.jpg", "sideways.jpg"]]
    again = run_cbir(["index", str(copies), "--json"], cli_env)
    assert json.loads(again.stdout)["unchanged"] == 12 and _facts_rows(cli_env) == 10


def test_exact_level_and_preferred_folder(copies, cli_env):
    shutil.copy(copies / "DCIM" / "coffee.jpg", copies / "chat" / "coffee-again.jpg")
    assert run_cbir(["index", str(copies), "-q"], cli_env).returncode == 0
    exact = _groups(cli_env, "--level", "exact")
    assert [sorted(Path(m["path"]).name for m in g["members"]) for g in exact["groups"]] == [
        ["coffee-again.jpg", "coffee.jpg"]]
    preferred = _groups(cli_env, "--prefer", str(copies / "chat"))
    astronaut = next(g for g in preferred["groups"] if any("astronaut.jpg" in m["path"] for m in g["members"]))
    assert Path(astronaut["keeper"]).parent.name == "chat" and astronaut["reason"].startswith("in the preferred folder")


def test_move_extras_dry_run_then_move_then_undo_restores_everything(copies, cli_env, tmp_path):
    assert run_cbir(["index", str(copies), "-q"], cli_env).returncode == 0
    before = snapshot(copies)
    dry = run_cbir(["duplicates", "--move-extras"], cli_env)
    assert dry.returncode == 0 and "dry run, nothing was moved" in dry.stderr, dry.stderr
    assert snapshot(copies) == before and len(dry.stdout.splitlines()) == 4
    done = run_cbir(["duplicates", "--move-extras", "--yes", "--sheet", str(tmp_path / "sheet.png")], cli_env)
    assert done.returncode == 0, done.stderr
    moved = sorted(p.name for p in (copies / "duplicates").iterdir())
    assert moved == ["IMG-0001.jpg", "IMG-0002.jpg", "crop.jpg", "sideways.jpg"]
    assert (copies / "DCIM" / "astronaut.jpg").is_file()
    assert sorted(snapshot(copies).values()) == sorted(before.values())  # moved, never deleted
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width >= 5 * 150 and sheet.height >= 150
        rgb = sheet.convert("RGB")
        assert rgb.getpixel((2, 2)) == (0, 160, 0)  # the keeper's frame, first in its row
        assert rgb.getpixel((sheet.width // 5 + 2, 2)) == (255, 255, 255)  # a copy is not framed
    again = _groups(cli_env)  # what was set aside is not found again
    assert again["groups"] == []
    cleaning = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--json"], cli_env)
    assert cleaning.returncode == 0, cleaning.stderr
    planned = [m["path"] for m in json.loads(cleaning.stdout)["moves"]]
    assert planned and not [p for p in planned if "/duplicates/" in p]  # nor by clean
    history = json.loads(run_cbir(["history", "--json"], cli_env).stdout)
    assert history[-1]["categories"] == ["duplicates"] and history[-1]["moved"] == 4
    undo = run_cbir(["undo", "--yes"], cli_env)
    assert undo.returncode == 0, undo.stderr
    assert snapshot(copies) == before


def test_duplicates_refusals_are_one_line(copies, cli_env):
    assert run_cbir(["duplicates"], cli_env).returncode == 5  # no index yet
    assert run_cbir(["index", str(copies), "-q"], cli_env).returncode == 0
    proc = run_cbir(["duplicates", "--yes"], cli_env)
    assert proc.returncode == 2 and "go with --move-extras" in proc.stderr and "Traceback" not in proc.stderr


LOOK_ALIKES = [  # pages of one manual or web site: the same layout, different content
    "screenshot/local__shotb_005_1920x1080.png", "screenshot/local__shotb_009_1440x900.png",
    "screenshot/local__shot_010_1366x768.png", "screenshot/local__shot_003_1366x768.png",
    "screenshot/local__shot_002_1280x800.png", "screenshot/local__shotb_010_1024x768.png",
    "screenshot/local__shot_011_1024x768.png", "screenshot/local__shot_012_1024x768.png",
    "screenshot/local__shot_001_390x844.png", "screenshot/local__shot_006_390x844.png",
    "screenshot/local__shot_014_1280x800.png", "screenshot/local__shot_009_1280x800.png",
    "screenshot/local__shot_017_1366x768.png", "screenshot/local__shot_024_1366x768.png",
    "screenshot/local__shotb_022_1280x800.png", "screenshot/local__shotb_023_1024x768.png",
    "screenshot/deb_gimp-help-en__keyboard-shortcuts-dialog.png",
    "screenshot/deb_gimp-help-en__input-devices-tablet.png",
]
LEAFLET = [f"receipt/pypi-sdist_ocrmypdf__{n}.png" for n in ("poster-1", "linn", "cardinal-1", "jbig2-1")]


@pytest.mark.skipif(not GALLERY.is_dir(), reason="../shared/data/gallery is not present")
def test_real_look_alikes_are_not_grouped_and_real_copies_are(tmp_path, cli_env):
    """Screenshots that an embedding and a thumbnail both take for copies, and food photos, stay apart;
    one leaflet rendered four ways (scanned, re-encoded, JBIG2) is one group."""
    root = tmp_path / "gallery"
    food = sorted((GALLERY / "food").iterdir())[:20]
    for source in [*(GALLERY / name for name in LOOK_ALIKES + LEAFLET), *food]:
        target = root / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    assert run_cbir(["index", str(root), "-q"], cli_env).returncode == 0
    for level in ("near", "similar"):
        groups = [sorted(str(Path(m["path"]).relative_to(root)) for m in g["members"])
                  for g in _groups(cli_env, "--level", level)["groups"]]
        assert groups == [sorted(LEAFLET)], (level, groups)
