"""When and where photos were taken, stored at index time: `cbir find --taken`, place words, an older index."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cbir


def _save(photo: np.ndarray, path: Path, taken: str | None = None, gps: tuple | None = None,
          camera: tuple[str, str] | None = None) -> Path:
    exif = Image.Exif()
    if camera:
        exif[271], exif[272] = camera
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
        exif.get_ifd(0x8769)[36881] = "+02:00"
    if gps:
        lat, lon = gps
        info = exif.get_ifd(0x8825)
        info[1], info[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        info[2] = (float(int(abs(lat))), float(int(abs(lat) % 1 * 60)), round(abs(lat) * 3600 % 60, 2))
        info[4] = (float(int(abs(lon))), float(int(abs(lon) % 1 * 60)), round(abs(lon) * 3600 % 60, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).convert("RGB").save(path, quality=90, exif=exif)
    return path


@pytest.fixture
def trip(tmp_path, photos) -> Path:
    root = tmp_path / "photos"
    _save(photos["astronaut"], root / "paris.jpg", "2023:06:14 18:30:00", (48.8566, 2.3522), ("Canon", "Canon EOS 5D"))
    _save(photos["coffee"], root / "kyoto.jpg", "2023:08:02 09:00:00", (35.0116, 135.7681))
    _save(photos["chelsea"], root / "cat.jpg", "2021:12:24 20:00:00")
    plain = _save(photos["rocket"], root / "no-exif.jpg")
    os.utime(plain, (1_600_000_000, 1_600_000_000))  # 2020-09-13
    return root


def _find(env: dict, *args: str) -> list[dict]:
    proc = run_cbir(["find", *args, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _names(found: list[dict]) -> list[str]:
    return [Path(f["path"]).name for f in found]


def test_times_places_and_cameras_are_stored_and_found(trip, cli_env):
    assert run_cbir(["index", str(trip), "-q"], cli_env).returncode == 0
    assert _names(_find(cli_env, "--taken", "2023")) == ["kyoto.jpg", "paris.jpg"]  # newest first
    assert _names(_find(cli_env, "--taken", "2023-06..2023-07")) == ["paris.jpg"]
    assert _names(_find(cli_env, "--taken", "2021-12-24")) == ["cat.jpg"]
    [paris] = _find(cli_env, "paris")
    assert Path(paris["path"]).name == "paris.jpg" and paris["place"] == "Paris, France"
    assert paris["taken_at"] == "2023-06-14 18:30:00" and paris["taken_source"] == "exif"
    assert paris["taken_offset"] == "+02:00" and paris["camera"] == "Canon EOS 5D"
    assert _names(_find(cli_env, "japan")) == ["kyoto.jpg"]  # a country names its towns' photos
    assert _names(_find(cli_env, "paris", "--taken", "2022")) == []
    [plain] = _find(cli_env, "--taken", "2020")
    assert Path(plain["path"]).name == "no-exif.jpg" and plain["taken_source"] == "file"
    bad = run_cbir(["find", "--taken", "June"], cli_env)
    assert bad.returncode == 2 and "--taken wants a year" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_cbir(["find", "atlantis"], cli_env)
    assert unknown.returncode == 2 and "no tag for 'atlantis'" in unknown.stderr


def test_an_older_index_gets_times_and_places_without_embedding_again(trip, cli_env):
    assert run_cbir(["index", str(trip), "-q"], cli_env).returncode == 0
    catalog = Path(cli_env["CBIR_HOME"]) / "index" / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:  # as an index made before times and places were stored
        conn.execute("DROP INDEX images_taken")
        conn.execute("DROP INDEX images_size")
        for column in ("taken_at", "taken_source", "taken_offset", "camera", "latitude", "longitude", "place"):
            conn.execute(f"ALTER TABLE images DROP COLUMN {column}")
    again = json.loads(run_cbir(["index", str(trip), "--json"], cli_env).stdout)
    assert again["unchanged"] == 4 and again["added"] == 0
    assert _names(_find(cli_env, "paris")) == ["paris.jpg"]
