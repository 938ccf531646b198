"""Move one file without ever overwriting or losing it, and never outside the folders allowed.

On one filesystem the file is hard-linked at its new path (which fails if the
name is taken) and then unlinked at the old one: at every instant it exists
under at least one name, and its inode, times and permissions are unchanged.
Across filesystems (or where hard links are not supported) it is copied to a
hidden partial file beside the destination, flushed, checked by size and
content hash, put in place under a name nobody holds, and only then removed
from the source.

Every folder involved is opened from the real path of an allowed base folder
(an indexed root, or ``--dest``) one component at a time without following
symbolic links, and the file is linked, copied and unlinked relative to those
open folders. So a file reached through a symbolic link (a linked file, or a
file inside a linked folder) is never moved, a category folder that is a link
is never used, and swapping a folder for a link between the plan and the move
changes nothing: the check is the move itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from cbir.errors import CbirError
from index_store.hashing import content_hash_stream, file_content_hash

PARTIAL_SUFFIX = ".cbir-partial"
# Hard links are refused across devices and by some filesystems (FAT, some network shares).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


class MoveError(CbirError):
    """One file could not be moved; the file is left where it was."""


def partial_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{PARTIAL_SUFFIX}")


def file_hash(path: str | os.PathLike[str]) -> str:
    return file_content_hash(path)


def link_free(path: str, base: str) -> bool:
    """``path`` lies in ``base`` (or is it) and nothing below ``base`` on the way to it is a symbolic link."""
    rel = os.path.relpath(path, base)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return False
    real_base = os.path.realpath(base)
    expected = real_base if rel == os.curdir else os.path.join(real_base, rel)
    return os.path.realpath(path) == expected and not (rel != os.curdir and os.path.islink(path))


def base_of(path: str, bases: Sequence[str]) -> str | None:
    """The innermost base folder that holds ``path`` without a symbolic link on the way, or None."""
    best = _innermost(path, bases)
    return best if best is not None and link_free(path, best) else None


def _innermost(path: str, bases: Sequence[str]) -> str | None:
    inside = [b for b in bases if b and _textually_under(path, b)]
    return max(inside, key=len, default=None)


def _textually_under(path: str, base: str) -> bool:
    rel = os.path.relpath(path, base)
    return not (rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel))


def move_file(src: Path, dst: Path, expected_hash: str | None = None, *,
              src_bases: Sequence[str], dst_bases: Sequence[str]) -> str:
    """Move ``src`` to ``dst`` (which must not exist). Returns 'link' or 'copy', the way it went.

    ``src`` must lie in one of ``src_bases`` and ``dst`` in one of ``dst_bases``, with no symbolic link
    below the base on either way; missing folders on the way to ``dst`` are created.
    """
    src_base = _innermost(str(src.parent), src_bases)
    if src_base is None:
        raise MoveError(f"{src} lies outside the indexed folders; cbir never moves such files")
    dst_base = _innermost(str(dst.parent), dst_bases)
    if dst_base is None:
        raise MoveError(f"{dst.parent} lies outside the folders cbir may move files into")
    with _folder(str(src.parent), src_base) as src_fd, _folder(str(dst.parent), dst_base, create=True) as dst_fd:
        try:
            info = os.stat(src.name, dir_fd=src_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise MoveError(f"{src} no longer exists") from None
        except OSError as exc:
            raise MoveError(f"cannot read {src}: {exc.strerror}") from None
        if stat.S_ISLNK(info.st_mode):
            raise MoveError(f"{src} is a symbolic link; cbir never moves links")
        if not stat.S_ISREG(info.st_mode):
            raise MoveError(f"{src} is not a regular file")
        if _exists(dst.name, dst_fd):
            raise MoveError(f"{dst} already exists")
        try:
            os.link(src.name, dst.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            how = "link"
        except FileExistsError:
            raise MoveError(f"{dst} already exists") from None
        except FileNotFoundError:
            raise MoveError(f"{src} no longer exists") from None
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise MoveError(f"cannot move {src} to {dst}: {exc.strerror}") from None
            _copy_verify_place(src, dst, src_fd, dst_fd, expected_hash, info)
            how = "copy"
        _finish(src, dst, src_fd, dst_fd)
    return how


def remove_name(path: str, bases: Sequence[str]) -> None:
    """Unlink one name of a file whose content is verified to exist elsewhere (settling an interrupted move)."""
    base = _innermost(os.path.dirname(path), bases)
    if base is None:
        raise MoveError(f"{path} lies outside the allowed folders; left as it is")
    with _folder(os.path.dirname(path), base) as fd:
        info = os.stat(os.path.basename(path), dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise MoveError(f"{path} is not a regular file; left as it is")
        _unlink_durably(os.path.basename(path), fd)


def _finish(src: Path, dst: Path, src_fd: int, dst_fd: int) -> None:
    """Remove the source name; if that is refused, withdraw the new name so nothing is doubled."""
    try:
        _unlink_durably(src.name, src_fd)
    except OSError as exc:
        os.unlink(dst.name, dir_fd=dst_fd)  # a second name (or verified copy) of a file that stays at src
        raise MoveError(f"cannot remove {src} after placing it at {dst}: {exc.strerror}") from None


def _copy_verify_place(src: Path, dst: Path, src_fd: int, dst_fd: int, expected_hash: str | None,
                       info: os.stat_result) -> None:
    tmp = partial_path(dst).name
    try:
        digest = _copy(src.name, tmp, src_fd, dst_fd)
        os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)
        os.chmod(tmp, stat.S_IMODE(info.st_mode), dir_fd=dst_fd)
        if os.stat(tmp, dir_fd=dst_fd, follow_symlinks=False).st_size != info.st_size:
            raise MoveError(f"copy of {src} has the wrong size")
        if expected_hash is not None and digest != expected_hash:
            raise MoveError(f"copy of {src} does not match its content hash")
        _place_without_replacing(tmp, dst, dst_fd)
    except OSError as exc:
        raise MoveError(f"cannot copy {src} to {dst}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dst_fd)  # our own temporary copy; the source is untouched


def _copy(name: str, tmp: str, src_fd: int, dst_fd: int) -> str:
    """Copy, fsync, and return the content hash of what was read."""
    reader = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
    try:
        writer = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dst_fd)
        try:
            hasher = content_hash_stream()
            while chunk := os.read(reader, _CHUNK):
                hasher.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(writer, view):]
            os.fsync(writer)
        finally:
            os.close(writer)
    finally:
        os.close(reader)
    return hasher.hexdigest()


def _place_without_replacing(tmp: str, dst: Path, dst_fd: int) -> None:
    try:
        os.link(tmp, dst.name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd, follow_symlinks=False)  # refuses a taken name
    except FileExistsError:
        raise MoveError(f"{dst} already exists") from None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        if _exists(dst.name, dst_fd):
            raise MoveError(f"{dst} already exists") from None
        os.rename(tmp, dst.name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)  # no hard links: the check is the best


def _unlink_durably(name: str, dir_fd: int) -> None:
    os.unlink(name, dir_fd=dir_fd)
    with contextlib.suppress(OSError):  # make the removal durable before the journal says the move is done
        os.fsync(dir_fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def _folder(folder: str, base: str, create: bool = False) -> Iterator[int]:
    """An open descriptor of ``folder``, reached from ``base``'s real path without following links.

    With ``create``, missing folders are made on the way (``base`` too: it is a root or ``--dest``).
    """
    rel = os.path.relpath(folder, base)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    real_base = os.path.realpath(base)
    try:
        if create:
            os.makedirs(real_base, exist_ok=True)
        fd = os.open(real_base, _DIR_FLAGS)
    except OSError as exc:
        raise MoveError(f"cannot open {base}: {exc.strerror}") from None
    try:
        walked = base
        for part in parts:
            walked = os.path.join(walked, part)
            child = _open_child(part, fd, walked, create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_child(name: str, parent_fd: int, shown: str, create: bool) -> int:
    for attempt in (0, 1):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create or attempt:
                raise MoveError(f"{shown} no longer exists") from None
            try:
                os.mkdir(name, dir_fd=parent_fd)
            except FileExistsError:
                pass  # made by someone else meanwhile; opened (and checked) next
            except OSError as exc:
                raise MoveError(f"cannot create {shown}: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise MoveError(f"{shown} is a symbolic link or not a folder; cbir never moves files "
                                "through links") from None
            raise MoveError(f"cannot open {shown}: {exc.strerror}") from None
    raise AssertionError("unreachable")


def free_name(folder: Path, name: str, taken: set[str]) -> Path:
    """``folder/name``, or ``folder/stem-1.ext``, ``stem-2.ext``... the first one neither on disk nor taken."""
    stem, ext = os.path.splitext(name)
    candidate, n = folder / name, 0
    while os.path.lexists(candidate) or str(candidate) in taken:
        n += 1
        candidate = folder / f"{stem}-{n}{ext}"
    return candidate
