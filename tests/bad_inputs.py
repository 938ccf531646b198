"""A corpus of broken files, generated so the tests need nothing from outside."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from tests.conftest import save_photo


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 20000x20000 PNG (400 megapixels) that compresses to a few hundred KB."""
    row = b"\x00" + b"\x00" * width  # filter byte + one grey byte per pixel
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    )
    return path


def make_bad_corpus(root: Path, photo: np.ndarray) -> dict[str, str]:
    """Broken files under ``root``; returns {file name: the skip reason cbir must give}."""
    root.mkdir(parents=True, exist_ok=True)
    good = save_photo(photo, root / "good.jpg", quality=90)
    data = good.read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "random.jpg").write_bytes(np.random.default_rng(0).bytes(50_000))
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("this is a text file, not an image\n" * 20)
    huge_png(root / "huge.png")
    os.symlink(root / "does-not-exist.jpg", root / "dangling.jpg")
    os.symlink(root, root / "loop")  # a symlink loop back to the root
    os.mkfifo(root / "pipe.jpg")
    expected = {
        "truncated.jpg": "corrupt image",
        "random.jpg": "not an image",
        "empty.jpg": "empty file",
        "notes.png": "not an image",
        "huge.png": "too many pixels",
        "dangling.jpg": "unreadable",
        "pipe.jpg": "not a regular file",
    }
    if os.geteuid() != 0:  # root reads any file whatever its mode
        locked = save_photo(photo, root / "locked.jpg")
        locked.chmod(0)
        expected["locked.jpg"] = "unreadable"
    return expected
