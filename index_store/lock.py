"""One writer per index: an advisory lock the kernel releases if the process dies."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from cbir.errors import IndexBusyError, ReadOnlyError

LOCK_FILE = "writer.lock"


class WriterLock:
    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, wait: Callable[[str], object] | None = None) -> None:
        """Take the lock; IndexBusyError when another process holds it, unless ``wait`` is given: then it is
        told why (once) and the lock is taken when the other process lets go."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise ReadOnlyError(
                    f"index {self.path.parent} cannot be written ({exc.strerror}): it can be queried, but "
                    "indexing, clean and undo need a writable index") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            busy = f"index {self.path.parent} is busy: another cbir process (pid {holder}) is writing it"
            if wait is None:
                os.close(fd)
                raise IndexBusyError(f"{busy}; try again when it finishes") from None
            wait(f"{busy}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def held(index_dir: Path) -> bool:
        """Whether some process is writing the index now (without taking the lock for long)."""
        try:
            fd = os.open(index_dir / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
