"""Walk folders for image files: hidden entries skipped, symlinks followed without loops."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from indexer.loader import is_candidate


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str
    detail: str


def entry_of(path: str, info: os.stat_result) -> FileEntry | Problem:
    """An image-named file found at ``path`` with ``info`` (its stat, links followed): only a regular file is
    read."""
    if not stat.S_ISREG(info.st_mode):
        return Problem(path, "not a regular file", stat.filemode(info.st_mode))
    return FileEntry(path, info.st_size, info.st_mtime_ns)


def walk_images(
    root: str, extensions: frozenset[str], exclude: Iterable[str] = ()
) -> Iterator[FileEntry | Problem]:
    """Yield every image-named file under ``root`` in a stable (sorted) order.

    ``exclude`` holds absolute directory paths that are never entered (the
    index itself). Paths are absolute but not resolved, so a file reached
    through a symlinked folder keeps the path the user sees.
    """
    excluded = {os.path.realpath(p) for p in exclude}
    visited: set[tuple[int, int]] = set()
    stack = [os.path.abspath(root)]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
        except OSError as exc:
            yield Problem(directory, "unreadable folder", exc.strerror or str(exc))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited or os.path.realpath(directory) in excluded:
            continue  # a symlink loop or a second link to a folder already walked
        visited.add(key)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Problem(directory, "unreadable folder", exc.strerror or str(exc))
            continue
        subdirs: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(entry.path)
                continue
            if not is_candidate(entry.name, extensions):
                continue
            try:
                info = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield Problem(entry.path, "unreadable", exc.strerror or str(exc))
                continue
            yield entry_of(entry.path, info)
        # Reversed so that popping from the stack visits subfolders in sorted order.
        stack.extend(reversed(subdirs))
