"""Small real-image datasets the tests build themselves: documents vs photographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("total invoice amount paid cash card date item qty price tax subtotal receipt change thank you "
         "store order number balance account due").split()
PHOTO_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "china", "flower", "coins", "camera")


def render_document(rng: np.random.Generator, size: tuple[int, int] = (360, 480)) -> Image.Image:
    """A printed page: lines of text and figures, like a scanned receipt or letter."""
    page = Image.new("RGB", size, tuple(int(v) for v in rng.integers(235, 256, 3)))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=int(rng.integers(14, 24)))
    y = int(rng.integers(10, 40))
    while y < size[1] - 30:
        words = " ".join(rng.choice(WORDS, int(rng.integers(2, 6))))
        draw.text((int(rng.integers(10, 40)), y), f"{words} {rng.integers(1, 999)}.{rng.integers(0, 99):02d}",
                  fill=(20, 20, 20), font=font)
        y += int(rng.integers(22, 34))
    return page


def scan_crop(page: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Two random columns of a real scanned page (scikit-image's ``page``) stacked into one long, narrow
    strip: printed text shaped like a till receipt, as a scanner saw it. Rendered text on white is as much
    a screenshot of a web page as a document, to a person and a model; so is a wide crop of the page."""
    w = page.shape[1]
    width = int(rng.integers(128, 161))
    columns = rng.integers(0, w - width, size=2)
    return Image.fromarray(np.concatenate([page[:, x: x + width] for x in columns], axis=0))


def crop_photo(photo: np.ndarray, rng: np.random.Generator, size: int = 256) -> Image.Image:
    image = Image.fromarray(photo).convert("RGB")
    w, h = image.size
    side = int(min(w, h) * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return image.crop((x, y, x + side, y + side)).resize((size, size))


def make_two_class_dataset(root: Path, photos: dict[str, np.ndarray], per_class: int = 12, seed: int = 0) -> Path:
    """``root/document/*.png`` and ``root/photo/*.jpg``: real photo crops against rendered pages."""
    rng = np.random.default_rng(seed)
    (root / "document").mkdir(parents=True, exist_ok=True)
    (root / "photo").mkdir(parents=True, exist_ok=True)
    sources = [name for name in PHOTO_SOURCES if name in photos]
    for i in range(per_class):
        render_document(rng).save(root / "document" / f"doc_{i:02d}.png")
        crop_photo(photos[sources[i % len(sources)]], rng).save(root / "photo" / f"photo_{i:02d}.jpg", quality=90)
    return root
