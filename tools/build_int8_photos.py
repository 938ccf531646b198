"""Make the photos the int8 engine is calibrated and checked on: cbir/data/int8/{calibration,check}/.

    python tools/build_int8_photos.py [--shared ../shared/data] [--out cbir/data/int8]

Real photos from the development data, as the network sees them (224x224, decoded by cbir's own loader),
saved as JPEG. Calibration: 256 photos drawn at random (seed 0) from the gallery and the "other" photos.
Check: the remaining gallery and "other" photos plus 100 of the food-group photos, none of them used for
calibration. SOURCES.csv gives each file's source package and licence, copied from the development
data's manifests; near-duplicate groups are left out so that no copy of a calibration photo is checked.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

from PIL import Image

from indexer.loader import decode, read_file

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = 256
FOOD_IN_CHECK = 100


def listed(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as fh:
        return [{**row, "file": str(folder / row["path"])} for row in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "cbir" / "data" / "int8")
    args = parser.parse_args()
    pool = listed(args.shared / "gallery") + listed(args.shared / "other")
    food = listed(args.shared / "retrieval_food_groups")
    rng = random.Random(0)
    rng.shuffle(pool)
    rng.shuffle(food)
    parts = {"calibration": pool[:CALIBRATION], "check": pool[CALIBRATION:] + food[:FOOD_IN_CHECK]}
    if args.out.exists():
        shutil.rmtree(args.out)
    sources = []
    for part, rows in parts.items():
        (args.out / part).mkdir(parents=True)
        for n, row in enumerate(rows):
            name = f"{part}/{n:03d}.jpg"
            Image.fromarray(decode(read_file(row["file"]).data)).save(args.out / name, quality=90)
            sources.append({"file": name, "from": row["path"], "source": row["source"], "license": row["license"]})
    with open(args.out / "SOURCES.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["file", "from", "source", "license"])
        writer.writeheader()
        writer.writerows(sources)


if __name__ == "__main__":
    main()
