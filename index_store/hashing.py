"""Content hashes: what identifies an image's bytes, and what checks a written file."""

from __future__ import annotations

import hashlib
import os
import zlib

_CHUNK = 1 << 20


def content_hash(data: bytes) -> str:
    """The catalog's content hash of a file's bytes (blake2b, 128 bits)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def content_hash_stream():
    """An incremental ``content_hash``: ``update(bytes)`` then ``hexdigest()``."""
    return hashlib.blake2b(digest_size=16)


def file_content_hash(path: str | os.PathLike[str]) -> str:
    """``content_hash`` of a whole file, read in chunks."""
    digest = content_hash_stream()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_crc32(path: str | os.PathLike[str]) -> int:
    """A fast checksum of a file (about 2 GB/s): enough to notice a damaged derived file."""
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc
