"""One writer per index: an advisory lock the kernel releases if the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cbir.errors import IndexBusyError


class WriterLock:
    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexBusyError(
                f"index {self.path.parent} is busy: another cbir process (pid {holder}) is writing it; "
                "try again when it finishes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
