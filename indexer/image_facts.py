"""What a person weighs when choosing between copies of a photo, and a small picture to compare them by.

For one file: its full size (upright, per EXIF), format, an estimate of its
JPEG quality (from its quantization tables; lossless formats count as 100),
sharpness (variance of the Laplacian on a fixed-size grey version, so copies
of different sizes compare fairly), capture time and editing software from
EXIF, and a grey thumbnail (longest side ``THUMB_SIDE``) for the structural
check that tells a real copy from a merely similar photo.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from cbir.errors import ImageDecodeError
from indexer.loader import open_reduced, read_file

THUMB_SIDE = 96
DETAIL_SIDE = 256  # the grey version the detail check compares, uint8
SHARPNESS_SIDE = 512
# The IJG standard luminance quantization table (quality 50), in zigzag order as Pillow reports it.
_STD_LUMA = np.array([
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58,
    51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103,
    62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99], np.float64)
_EXIF_IFD, _TAKEN, _SOFTWARE = 0x8769, 36867, 305


@dataclass
class ImageFacts:
    width: int
    height: int
    format: str
    quality: int  # 1-100: estimated JPEG quality, 100 for lossless formats
    sharpness: float
    taken_at: str | None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    software: str | None  # EXIF Software: what last saved it, when it says
    thumb: np.ndarray  # float32 grey, longest side THUMB_SIDE
    detail: np.ndarray  # uint8 grey, longest side DETAIL_SIDE (or the image's own, when smaller)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "format": self.format, "quality": self.quality,
                "sharpness": round(self.sharpness, 1), "taken_at": self.taken_at, "software": self.software}


def image_facts(path: str | os.PathLike[str]) -> ImageFacts:
    """The facts of one image file; raises ImageDecodeError like indexing does."""
    content = read_file(path)
    with open_reduced(content.data, SHARPNESS_SIDE) as image:
        try:
            exif = image.getexif()
        except Exception:  # a malformed EXIF block costs the facts it holds, not the image
            exif = Image.Exif()
        quality = _jpeg_quality(image)
        fmt = image.format or "?"
        width, height = _full_size(content.data, exif)
        try:
            grey = ImageOps.exif_transpose(image).convert("L")
        except Exception as exc:
            raise ImageDecodeError("corrupt image", str(exc)[:200]) from exc
    return ImageFacts(width, height, fmt, quality, _sharpness(grey), _exif_text(exif, _TAKEN, ifd=True),
                      _exif_text(exif, _SOFTWARE), _thumbnail(grey), _detail(grey))


def _full_size(data: bytes, exif: Image.Exif) -> tuple[int, int]:

    with Image.open(io.BytesIO(data)) as header:  # the header only: nothing is decoded
        width, height = header.size
    return (height, width) if exif.get(0x0112) in (5, 6, 7, 8) else (width, height)


def _jpeg_quality(image: Image.Image) -> int:
    """IJG quality estimate from the luminance table (100 for formats without quantization)."""
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables:
        return 100
    luma = np.asarray(tables[0], np.float64)
    if luma.shape != _STD_LUMA.shape:
        return 100
    scale = float(np.mean(luma / _STD_LUMA)) * 100.0  # the IJG scaling factor, in percent
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(np.clip(round(quality), 1, 100))


def _sharpness(grey: Image.Image) -> float:
    scale = SHARPNESS_SIDE / max(grey.size)
    g = np.asarray(grey.resize((max(3, round(grey.width * scale)), max(3, round(grey.height * scale))),
                               Image.Resampling.BILINEAR), np.float32)
    laplacian = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(laplacian.var())


def _thumbnail(grey: Image.Image) -> np.ndarray:
    scale = THUMB_SIDE / max(grey.size)
    size = (max(8, round(grey.width * scale)), max(8, round(grey.height * scale)))
    return np.asarray(grey.resize(size, Image.Resampling.BILINEAR), np.float32)


def _detail(grey: Image.Image) -> np.ndarray:
    copy = grey.copy()
    copy.thumbnail((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(copy, np.uint8)


def _exif_text(exif: Image.Exif, tag: int, ifd: bool = False) -> str | None:
    try:
        value = exif.get_ifd(_EXIF_IFD).get(tag) if ifd else exif.get(tag)
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip("\x00 ").strip() if value is not None else ""
    return text or None
