"""Write a file so that readers see either the old or the new content, never a mix."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cbir.errors import disk_full, from_os_error

TMP_SUFFIX = ".tmp"


def atomic_write(target: Path, write: Callable[[Path], object], suffix: str = TMP_SUFFIX) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it over ``target``.

    The file gets the usual permissions for new files (0666 less the umask), not
    mkstemp's private 0600, so an index shared with other users stays readable.
    Running out of space or hitting a read-only filesystem raises cbir's typed errors.
    ``suffix`` ends the temporary file's name, for writers that insist on an extension.
    """
    doing = f"writing {target.name}"
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    except OSError as exc:
        raise from_os_error(exc, target, doing) or exc from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise from_os_error(exc, target, doing) or exc from None
    except RuntimeError as exc:  # FAISS reports its I/O failures as RuntimeError
        if "No space left" in str(exc) or _free_bytes(target.parent) < (1 << 20):
            raise disk_full(target, doing) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stale_temporaries(folder: Path, names: list[str]) -> int:
    """Delete ``.NAME.*.tmp`` files a killed writer left beside ``names``; only the lock holder may call this."""
    removed = 0
    for name in names:
        for leftover in folder.glob(f".{name}.*{TMP_SUFFIX}"):
            try:
                leftover.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)
