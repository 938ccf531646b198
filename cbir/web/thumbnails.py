"""Thumbnails and previews of indexed images, made once per content and kept beside the index.

A picture is named by its content hash, so a file that moves keeps its
thumbnail and two copies share one. It is made from the file only while the
file's bytes still hash to what was indexed: the server never shows (or
serves) bytes it did not index. Pictures are made on demand by a small pool,
and a background thread at the lowest CPU priority makes the rest, so the first
look at a library of 10^4 images does not wait for 10^4 decodes in a row.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from cbir.errors import ImageNotFoundError
from indexer.loader import read_file, thumbnail

log = logging.getLogger(__name__)

THUMBNAIL_FOLDER = "thumbnails"
SIZES = {"thumb": 320, "preview": 1280}  # longest side in pixels
_QUALITY = {"thumb": 78, "preview": 85}
READ_TIMEOUT_S = 10.0  # a file that takes longer is reported as unreadable (its read goes on, on the pool)


class Thumbnails:
    def __init__(self, index_dir: Path, workers: int = 2) -> None:
        self.folder = index_dir / THUMBNAIL_FOLDER
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cbir-thumbnails")
        self._pending: dict[tuple[str, str], Future] = {}
        self._lock = threading.Lock()
        self.background_done = 0
        self.background_total = 0
        self._stop = threading.Event()

    def path(self, digest: str, size: str) -> Path:
        return self.folder / size / digest[:2] / f"{digest}.webp"

    def get(self, row, size: str = "thumb") -> bytes:
        """The WebP bytes of ``row``'s picture at ``size``, made now if they are not cached yet."""
        if size not in SIZES:
            raise ImageNotFoundError(f"no picture size {size!r}; sizes: {', '.join(SIZES)}")
        cached = self._read(self.path(row.hash, size))
        if cached is not None:
            return cached
        key = (row.hash, size)
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                future = self._pending[key] = self._pool.submit(self._make, row, size)
        try:
            return future.result(timeout=READ_TIMEOUT_S)
        except FutureTimeout:
            raise ImageNotFoundError(f"{row.path} took over {READ_TIMEOUT_S:.0f} s to read; it is on a drive or "
                                     "share that does not answer") from None
        finally:
            if future.done():
                with self._lock:
                    self._pending.pop(key, None)

    def original(self, row) -> bytes:
        """The indexed file's bytes, read on the pool with the same time limit (a stale share costs one
        request, never a request thread for good)."""
        future = self._pool.submit(indexed_bytes, row)
        try:
            return future.result(timeout=READ_TIMEOUT_S)
        except FutureTimeout:
            raise ImageNotFoundError(f"{row.path} took over {READ_TIMEOUT_S:.0f} s to read") from None

    def _make(self, row, size: str) -> bytes:

        data = indexed_bytes(row)
        picture = thumbnail(data, SIZES[size])
        out = io.BytesIO()
        picture.save(out, "WEBP", quality=_QUALITY[size], method=4)
        encoded = out.getvalue()
        self._store(self.path(row.hash, size), encoded)
        return encoded

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data or None  # an empty file is a write cut short; it is made again

    def _store(self, path: Path, data: bytes) -> None:
        # A cache, not data: a temporary name and a rename keep readers from a half-written file; no fsync.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only index still shows pictures, made each time
            log.debug("thumbnail not cached (%s): %s", path, exc)

    def make_missing(self, rows: Callable[[], Iterable], on_error: Callable[[Any, Exception], None]) -> None:
        """Start a background thread at the lowest CPU priority that makes every missing thumbnail."""
        threading.Thread(target=self._background, args=(rows, on_error), name="cbir-thumbnails-background",
                         daemon=True).start()

    def _background(self, rows: Callable[[], Iterable], on_error: Callable[[Any, Exception], None]) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: this thread only
        except (OSError, AttributeError):
            pass
        todo = [row for row in rows() if not self.path(row.hash, "thumb").is_file()]
        self.background_total = len(todo)
        for row in todo:
            if self._stop.is_set():
                return
            try:
                self._make(row, "thumb")
            except Exception as exc:  # one unreadable file must not stop the others
                on_error(row, exc)
            self.background_done += 1

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def indexed_bytes(row) -> bytes:
    """The bytes of an indexed file, only while they are still what was indexed."""

    if os.path.islink(row.path) and not os.path.isfile(row.path):
        raise ImageNotFoundError(f"{row.path} is a dangling link now")
    try:
        content = read_file(row.path)
    except Exception as exc:
        raise ImageNotFoundError(f"{row.path} cannot be read now ({exc})") from None
    if content.digest != row.hash:
        raise ImageNotFoundError(f"{row.path} changed since it was indexed; run `cbir index` to see it again")
    return content.data
