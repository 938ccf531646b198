"""Move one file without ever overwriting or losing it, on one filesystem or across two.

On one filesystem the file is hard-linked at its new path (which fails if the
name is taken) and then unlinked at the old one: at every instant it exists
under at least one name, and its inode, times and permissions are unchanged.
Across filesystems (or where hard links are not supported) it is copied to a
hidden partial file beside the destination, flushed, checked by size and
content hash, put in place under a name nobody holds, and only then removed
from the source.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from cbir.errors import CbirError
from indexer.loader import content_hash

PARTIAL_SUFFIX = ".cbir-partial"
# Hard links are refused across devices and by some filesystems (FAT, some network shares).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


class MoveError(CbirError):
    """One file could not be moved; the file is left where it was."""


def partial_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{PARTIAL_SUFFIX}")


def file_hash(path: Path) -> str:
    return content_hash(Path(path).read_bytes())


def move_file(src: Path, dst: Path, expected_hash: str | None = None) -> str:
    """Move ``src`` to ``dst`` (which must not exist). Returns 'link' or 'copy', the way it went."""
    if os.path.lexists(dst):
        raise MoveError(f"{dst} already exists")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise MoveError(f"{dst} already exists") from None
    except FileNotFoundError:
        raise MoveError(f"{src} no longer exists") from None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise MoveError(f"cannot move {src} to {dst}: {exc.strerror}") from None
        _copy_verify_place(src, dst, expected_hash)
        _finish(src, dst)
        return "copy"
    _finish(src, dst)
    return "link"


def _finish(src: Path, dst: Path) -> None:
    """Remove the source name; if that is refused, withdraw the new name so nothing is doubled."""
    try:
        _unlink(src)
    except OSError as exc:
        os.unlink(dst)  # a second name (or verified copy) of a file that stays at src
        raise MoveError(f"cannot remove {src} after placing it at {dst}: {exc.strerror}") from None


def _copy_verify_place(src: Path, dst: Path, expected_hash: str | None) -> None:
    tmp = partial_path(dst)
    try:
        shutil.copy2(src, tmp, follow_symlinks=False)  # data, mtime and mode
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        source_size = os.stat(src).st_size
        if os.stat(tmp).st_size != source_size:
            raise MoveError(f"copy of {src} has the wrong size")
        want = expected_hash or file_hash(src)
        if file_hash(tmp) != want:
            raise MoveError(f"copy of {src} does not match its content hash")
        _place_without_replacing(tmp, dst)
    except OSError as exc:
        raise MoveError(f"cannot copy {src} to {dst}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)  # our own temporary copy; the source is untouched


def _place_without_replacing(tmp: Path, dst: Path) -> None:
    try:
        os.link(tmp, dst)  # atomic and refuses an existing name
    except FileExistsError:
        raise MoveError(f"{dst} already exists") from None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        if os.path.lexists(dst):
            raise MoveError(f"{dst} already exists") from None
        os.rename(tmp, dst)  # no hard links here: the check above is the best the filesystem allows


def _unlink(path: Path) -> None:
    os.unlink(path)
    try:  # make the removal durable before the journal says the move is done
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def free_name(folder: Path, name: str, taken: set[str]) -> Path:
    """``folder/name``, or ``folder/stem-1.ext``, ``stem-2.ext``... the first one neither on disk nor taken."""
    stem, ext = os.path.splitext(name)
    candidate, n = folder / name, 0
    while os.path.lexists(candidate) or str(candidate) in taken:
        n += 1
        candidate = folder / f"{stem}-{n}{ext}"
    return candidate
