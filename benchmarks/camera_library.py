"""Make a library of camera-sized JPEGs (12 megapixels, as phones write them) from real photos.

    python -m benchmarks.camera_library OUT_DIR [--source DIR ...] [--count 96]

No 12-megapixel photos ship with the development data, so these are made from
its real photos: each source photo of at least 0.25 megapixels is upscaled
(bicubic) to 4032x3024 or 3024x4032 (its orientation kept, centre-cropped to
4:3), given a mild luminance grain like a phone sensor's at base ISO (an
upscaled photo alone is unnaturally smooth and compresses to a third of a real
camera file, and decoding cost follows the compressed size), and written as a
baseline JPEG at quality 90 with 4:2:0 chroma, about 3 MB each, as phone
cameras do. Output is deterministic: the same sources give the same bytes.
Sources default to ../shared/data/gallery and ../shared/data/other
(development photos; nothing from the reserved package).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = [ROOT.parent / "shared" / "data" / "gallery", ROOT.parent / "shared" / "data" / "other"]
LONG, SHORT = 4032, 3024
MIN_SOURCE_PIXELS = 250_000
PHOTO_SUFFIXES = {".jpg", ".jpeg"}  # photos, not screenshots or scans
GRAIN_SIGMA = 5.0


def sources(folders: list[Path]) -> list[Path]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in PHOTO_SUFFIXES:
                try:
                    with Image.open(path) as image:
                        if image.width * image.height >= MIN_SOURCE_PIXELS and image.mode == "RGB":
                            found.append(path)
                except OSError:
                    continue
    return found


def camera_photo(path: Path, rng: np.random.Generator) -> Image.Image:
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    size = (LONG, SHORT) if upright.width >= upright.height else (SHORT, LONG)
    big = ImageOps.fit(upright, size, Image.Resampling.BICUBIC)
    pixels = np.asarray(big, dtype=np.int16)
    grain = rng.normal(0.0, GRAIN_SIGMA, pixels.shape[:2]).astype(np.int16)
    return Image.fromarray(np.clip(pixels + grain[..., None], 0, 255).astype(np.uint8), "RGB")


def make_library(out: Path, folders: list[Path], count: int) -> list[Path]:
    """Write up to ``count`` camera-sized JPEGs into ``out`` (kept when already there); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    chosen = sources(folders)
    if not chosen:
        raise SystemExit(f"no source photos of at least {MIN_SOURCE_PIXELS} pixels under {folders}")
    written = []
    for i in range(count):
        source = chosen[i % len(chosen)]
        target = out / f"IMG_{i:04d}.jpg"
        if not target.exists():
            photo = camera_photo(source, np.random.default_rng(i))
            partial = target.with_suffix(".part")
            photo.save(partial, "JPEG", quality=90, subsampling="4:2:0", optimize=False, progressive=False)
            partial.replace(target)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, action="append", help="Folder of source photos (repeatable).")
    parser.add_argument("--count", type=int, default=96, help="How many camera-sized files to write.")
    args = parser.parse_args()
    paths = make_library(args.out, args.source or DEFAULT_SOURCES, args.count)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {total / len(paths) / 1e6:.1f} MB each on average, in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
