"""Read, hash and decode one image file; every failure becomes an ImageDecodeError."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from cbir.errors import ImageDecodeError
from index_store.hashing import content_hash
from indexer.decode_budget import BUDGET
from indexer.resnet import INPUT_SIZE

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}
)
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
AVIF_EXTENSIONS = frozenset({".avif"})  # phones save these now; Pillow reads them from 11.2 on
# Decompression bombs are refused above 2^28 pixels (268 megapixels): that admits every camera file we
# know of, 200-megapixel phone sensors included, which JPEG's draft mode decodes at 1/8 scale. cbir makes
# this check itself right after reading the header, so Pillow's lower default (89.5 megapixels, with an
# error at twice that) is lifted rather than raised as warnings.
MAX_PIXELS = 1 << 28
Image.MAX_IMAGE_PIXELS = None
MAX_FILE_BYTES = 512 * 1024 * 1024

_heif_state: dict[str, bool] = {}


def heif_available() -> bool:
    """Register the optional HEIC/HEIF opener once; False when pillow-heif is absent."""
    if "ok" not in _heif_state:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_state["ok"] = True
        except ImportError:
            _heif_state["ok"] = False
    return _heif_state["ok"]


def supported_extensions() -> frozenset[str]:
    extensions = IMAGE_EXTENSIONS | (AVIF_EXTENSIONS if _avif_available() else frozenset())
    return extensions | HEIF_EXTENSIONS if heif_available() else extensions


def _avif_available() -> bool:
    return bool(features.check("avif"))


@dataclass
class FileContent:
    data: bytes
    digest: str


def read_file(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> FileContent:
    """Read a whole regular file and hash it; the bytes are then decoded without a second read.

    The file is opened without blocking and checked to be a regular file before anything is read, so a
    FIFO or a device put where a photo was costs one ImageDecodeError, never a reader that waits forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError as exc:
        raise ImageDecodeError("not a regular file", str(exc.strerror)) from exc
    except OSError as exc:
        raise ImageDecodeError("unreadable", exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageDecodeError("not a regular file", "a folder, device, FIFO or socket")
        if info.st_size == 0:
            raise ImageDecodeError("empty file", "0 bytes")
        if info.st_size > max_bytes:
            raise ImageDecodeError("file too large", f"{info.st_size} bytes, limit {max_bytes}")
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(max_bytes + 1)
    except ImageDecodeError:
        raise
    except OSError as exc:
        raise ImageDecodeError("unreadable", exc.strerror or str(exc)) from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise ImageDecodeError("file too large", f"over {max_bytes} bytes")
    return FileContent(data, content_hash(data))


# Bytes per pixel of a decoded picture, by mode (what Pillow allocates), and how many working copies its
# processing makes at most (a converted mode, a reduced step before the resize).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
                    "RGB": 4, "YCbCr": 4, "LAB": 4, "HSV": 4, "RGBA": 4, "RGBa": 4, "CMYK": 4, "I": 4, "F": 4}
_WORKING_COPIES = 2


def decoded_bytes(image: Image.Image) -> int:
    """What decoding ``image`` (at its draft size) and working on it takes, at most."""
    return image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4) * _WORKING_COPIES


@contextlib.contextmanager
def open_reduced(data: bytes, size: int = INPUT_SIZE, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """Open and load an image, at a reduced JPEG scale when that still covers ``size``, within the decode
    budget (indexer.decode_budget): the header is read first, and the pixels are allocated only once the
    picture is known to be under ``max_pixels`` and there is room for it."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too many pixels", str(exc).split(" could")[0]) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image", "unrecognised format") from exc
    except Exception as exc:  # Pillow plugins raise many types on malformed headers
        raise ImageDecodeError("corrupt image", _short(exc)) from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError("too many pixels", f"{width}x{height}, limit {max_pixels} pixels")
        if width == 0 or height == 0:
            raise ImageDecodeError("corrupt image", f"{width}x{height}")
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale when that still covers the target size:
            # a 12-megapixel photo then costs a fraction of a full decode.
            image.draft("RGB", (size, size))
        with BUDGET.hold(decoded_bytes(image)):
            try:
                image.load()
            except Exception as exc:
                raise ImageDecodeError("corrupt image", _short(exc)) from exc
            yield image


# Modes resized as they are and turned into RGB afterwards, on 224x224 rather than on every pixel; for
# these the result is the same either way (each RGB channel of a grey image is the grey).
_RESIZED_BEFORE_RGB = {"RGB": "RGB", "L": "L", "1": "L"}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode(data: bytes, size: int = INPUT_SIZE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes to a (size, size, 3) uint8 RGB array, upright per EXIF.

    The EXIF rotation is applied after resizing to the square: each axis is resampled on its own, so
    rotating first or last gives the same pixels, and turning 224x224 is cheaper than turning a photo.
    """
    with open_reduced(data, size, max_pixels) as image:
        try:
            working = _RESIZED_BEFORE_RGB.get(image.mode)
            if working is not None:
                small = (image if image.mode == working else image.convert(working)).resize(
                    (size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
                rgb = small if working == "RGB" else small.convert("RGB")
            else:
                rgb = _to_rgb(image).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            method = _TRANSPOSE.get(_orientation(image))
            return np.asarray(rgb if method is None else rgb.transpose(method), dtype=np.uint8)
        except Exception as exc:
            raise ImageDecodeError("corrupt image", _short(exc)) from exc


def thumbnail(data: bytes, side: int, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Encoded image bytes to an upright RGB picture whose longest side is at most ``side``, shape kept."""
    with open_reduced(data, side, max_pixels) as image:
        try:
            rgb = _to_rgb(_apply_orientation(image))
            rgb.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
            return rgb
        except Exception as exc:
            raise ImageDecodeError("corrupt image", _short(exc)) from exc


def load_image(path: str | os.PathLike[str], size: int = INPUT_SIZE) -> tuple[np.ndarray, str]:
    """Read, hash and decode a file: (pixels, content hash)."""
    content = read_file(path)
    return decode(content.data, size), content.digest


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        # A malformed EXIF block should not cost the user the image itself.
        return 1


def _apply_orientation(image: Image.Image) -> Image.Image:
    method = _TRANSPOSE.get(_orientation(image))
    return image if method is None else image.transpose(method)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Screenshots and logos often have alpha: composite on white as a viewer would show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def is_candidate(path: Path | str, extensions: frozenset[str]) -> bool:
    return os.path.splitext(str(path))[1].lower() in extensions


@dataclass
class Loaded:
    """One file read by ``load_many``: pixels and hash, or why not."""

    path: str
    pixels: np.ndarray | None  # None when only hashing, or when it failed
    digest: str | None
    reason: str | None = None  # why the file could not be read or decoded (a short tag), and the detail
    detail: str = ""
    facts: bytes | None = None  # what ``facts`` made of the file's bytes, when given

    @property
    def problem(self) -> str | None:
        return None if self.reason is None else self.reason + (f" ({self.detail})" if self.detail else "")


def load_many(paths: Iterable[str], workers: int = 2, *, decode_pixels: bool = True,
              window: int = 64, facts: Callable[[bytes], bytes | None] | None = None) -> Iterator[Loaded]:
    """Read, hash and (unless ``decode_pixels`` is False) decode files on ``workers`` threads, in order.

    At most ``window`` files are in flight, so memory stays bounded however many paths there are.
    """

    def load(path: str) -> Loaded:
        try:
            content = read_file(path)
            pixels = decode(content.data) if decode_pixels else None
            return Loaded(path, pixels, content.digest, None, facts=facts(content.data) if facts else None)
        except ImageDecodeError as exc:
            return Loaded(path, None, None, exc.reason, exc.detail)

    pending: deque[Future[Loaded]] = deque()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="cbir-load") as pool:
        for path in paths:
            pending.append(pool.submit(load, path))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

