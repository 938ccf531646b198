"""One budget for the memory that decoding pictures takes, shared by every path that decodes in a process
(indexing, evaluating, training, the server's uploads and thumbnails, duplicates).

A decode is admitted only while the decoded pictures in flight stay under the budget, whatever the number
of threads decoding: a folder of 256-megapixel PNGs is decoded one at a time, a folder of photos many at
once. The budget scales with the machine's memory, not its cores. A picture larger than the whole budget
is admitted alone. After a large decode the freed memory is handed back to the system (glibc keeps freed
heap memory otherwise; see ``return_freed_memory``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

# Bytes of decoded pictures in flight at most: an eighth of the memory, between 256 MB and 768 MB.
_LOW, _HIGH = 256 << 20, 768 << 20
# Decodes this large hand their memory back to the system when they end.
_LARGE = 64 << 20


def total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_budget() -> int:
    return max(_LOW, min(_HIGH, total_memory() // 8))


class DecodeBudget:
    """Bytes of decoded pictures in flight; ``hold`` waits until a decode fits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        with self._cond:
            while self.used and self.used + nbytes > self.limit:
                self._cond.wait()
            self.used += nbytes
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()
            if nbytes >= _LARGE:
                return_freed_memory()


BUDGET = DecodeBudget(default_budget())

_libc: ctypes.CDLL | None = None
_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            libc = None
        _libc = libc if libc is not None and hasattr(libc, "malloc_trim") else None
    return _libc


def keep_large_allocations_apart() -> None:
    """Allocate every block of 1 MiB or more with its own mapping, so that freeing it returns it to the system.

    glibc raises its mapping threshold after large blocks are freed (up to 32 MiB), and then serves
    decoding buffers from its heap, which it rarely gives back; fixing the threshold stops that. A process
    setting: the command line and the workers call it once at start. Does nothing where glibc is absent.
    """
    libc = _glibc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def return_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim); nothing elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
