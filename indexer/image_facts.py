"""What a person weighs when choosing between copies of a photo, and a small picture to compare them by.

For one file: its full size (upright, per EXIF), format, an estimate of its
JPEG quality (from its quantization tables; lossless formats count as 100),
sharpness (variance of the Laplacian on a fixed-size grey version, so copies
of different sizes compare fairly), capture time and editing software from
EXIF, and grey versions for the structural check that tells a real copy from
a merely similar photo (indexer.structure): ``detail`` (longest side
``DETAIL_SIDE``), and that halved (``thumb``); for a sparse picture (a page,
a screenshot: indexer.structure.SPARSE_SHARE), also ``fine`` at twice the
detail's size, where text is legible enough to tell two pages apart. Indexing computes them once per content
(``facts_from_bytes``) and stores them encoded (``encode_facts``) beside the
vectors, so a duplicate scan never decodes a file again.
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from cbir.errors import ImageDecodeError
from indexer.loader import open_reduced, read_file
from indexer.structure import SPARSE_SHARE, flat_share, frame_signature, tone_normalised

DETAIL_SIDE = 192
FINE_SIDE = 2 * DETAIL_SIDE
FACTS_VERSION = 1  # of the stored encoding and of what is computed; a change makes `cbir index` compute them again
# The largest grey version is stored as a JPEG (6-10 KB for a photo, 10-25 KB for a page), whose loss the
# checks cannot tell.
_QUALITY = 85
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
    fine: np.ndarray | None  # uint8 grey, longest side FINE_SIDE (or the image's own), for sparse pictures
    detail: np.ndarray  # uint8 grey, longest side DETAIL_SIDE: half of ``fine`` when there is one
    thumb: np.ndarray  # float32 grey, half of ``detail``
    signature: np.ndarray  # the thumbnail's frame signature (indexer.structure.frame_signature), float32

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "format": self.format, "quality": self.quality,
                "sharpness": round(self.sharpness, 1), "taken_at": self.taken_at, "software": self.software}


def image_facts(path: str | os.PathLike[str]) -> ImageFacts:
    """The facts of one image file; raises ImageDecodeError like indexing does."""
    return facts_from_bytes(read_file(path).data)


def facts_from_bytes(data: bytes) -> ImageFacts:
    """The facts of one encoded image; raises ImageDecodeError like indexing does."""
    with open_reduced(data, SHARPNESS_SIDE) as image:
        try:
            exif = image.getexif()
        except Exception:  # a malformed EXIF block costs the facts it holds, not the image
            exif = Image.Exif()
        quality = _jpeg_quality(image)
        fmt = image.format or "?"
        width, height = _full_size(data, exif)
        try:
            grey = ImageOps.exif_transpose(image).convert("L")
        except Exception as exc:
            raise ImageDecodeError("corrupt image", str(exc)[:200]) from exc
    meta = {"width": width, "height": height, "format": fmt, "quality": quality, "sharpness": _sharpness(grey),
            "taken_at": _exif_text(exif, _TAKEN, ifd=True), "software": _exif_text(exif, _SOFTWARE)}
    return _with_versions(meta, *_largest(grey))


def facts_blob(data: bytes) -> bytes | None:
    """``encode_facts`` of an encoded image; None when its facts cannot be read (it is then left out of
    duplicate groups, as an unreadable file is)."""
    try:
        return encode_facts(facts_from_bytes(data))
    except ImageDecodeError:
        return None


def encode_facts(facts: ImageFacts) -> bytes:
    """A compact blob: a JSON header, the frame signature (float16), then the fine grey version as a JPEG;
    the smaller versions are made from it again when decoding, as they were made from it."""
    buffer = io.BytesIO()
    Image.fromarray(facts.fine if facts.fine is not None else facts.detail).save(buffer, "JPEG", quality=_QUALITY)
    signature = facts.signature.astype(np.float16).tobytes()
    header = json.dumps({**facts.as_dict(), "sharpness": facts.sharpness, "signature": len(signature),
                         "fine": facts.fine is not None}).encode()
    return struct.pack("<I", len(header)) + header + signature + buffer.getvalue()


def decode_facts(blob: bytes) -> ImageFacts:
    """The facts ``encode_facts`` stored."""
    meta, start = _header(blob)
    end = start + meta.pop("signature")
    with Image.open(io.BytesIO(blob[end:])) as stored:
        largest = np.asarray(stored.convert("L"), np.uint8)
    signature = np.frombuffer(blob[start:end], np.float16).astype(np.float32)
    return _with_versions(meta, largest, meta.pop("fine"), signature)


def stored_signature(blob: bytes) -> np.ndarray:
    """Only the frame signature of a stored blob (float16), without decoding its picture."""
    meta, start = _header(blob)
    return np.frombuffer(blob[start: start + meta["signature"]], np.float16)


def _header(blob: bytes) -> tuple[dict, int]:
    (length,) = struct.unpack_from("<I", blob)
    return json.loads(blob[4: 4 + length]), 4 + length


def _with_versions(meta: dict, largest: np.ndarray, is_fine: bool, signature: np.ndarray | None = None
                   ) -> ImageFacts:
    detail = _halved(Image.fromarray(largest)) if is_fine else Image.fromarray(largest)
    thumb = np.asarray(_halved(detail), np.float32)
    if signature is None:
        signature = frame_signature(tone_normalised(thumb))
    return ImageFacts(**meta, fine=largest if is_fine else None, detail=np.asarray(detail, np.uint8), thumb=thumb,
                      signature=signature)


def _halved(image: Image.Image) -> Image.Image:
    return image.resize((max(8, round(image.width / 2)), max(8, round(image.height / 2))),
                        Image.Resampling.BILINEAR)


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


def _largest(grey: Image.Image) -> tuple[np.ndarray, bool]:
    """The fine version when the picture is sparse, else the detail version; and whether it is the fine."""
    fine = grey.copy()
    fine.thumbnail((FINE_SIDE, FINE_SIDE), Image.Resampling.BILINEAR)
    detail = _halved(fine)
    if flat_share(np.asarray(detail)) >= SPARSE_SHARE:
        return np.asarray(fine, np.uint8), True
    return np.asarray(detail, np.uint8), False


def _exif_text(exif: Image.Exif, tag: int, ifd: bool = False) -> str | None:
    try:
        value = exif.get_ifd(_EXIF_IFD).get(tag) if ifd else exif.get(tag)
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip("\x00 ").strip() if value is not None else ""
    return text or None
