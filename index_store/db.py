"""SQLite connections for the catalog and the journal: lossless paths, typed errors.

POSIX file names are bytes, and not every name is valid UTF-8. Python hands
such names over as ``str`` with surrogate escapes, which the sqlite3 module
refuses to bind. cbir stores every path as its exact bytes in a TEXT column
(``CAST(? AS TEXT)`` over ``os.fsencode(path)``) and reads text back with
surrogate escapes, so any name round-trips; for valid UTF-8 names this is the
same text the column always held, so older indexes read unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from cbir.errors import CbirError, ReadOnlyError, disk_full, from_os_error

# Use in SQL wherever a path is bound, with ``fs(path)`` as the parameter.
PATH_PARAM = "CAST(? AS TEXT)"

_SQLITE_FULL, _SQLITE_READONLY, _SQLITE_CANTOPEN = 13, 8, 14
_SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_IOERR = 11, 26, 10


def fs(path: str | os.PathLike[str]) -> bytes:
    """A path as the bytes the filesystem uses, for binding with ``PATH_PARAM``."""
    return os.fsencode(path)


def prefix_bounds(folder: str) -> tuple[bytes, bytes]:
    """Every path under ``folder`` sorts in [low, high) (bind both with ``PATH_PARAM``): a range scan."""
    low = fs(folder.rstrip("/") + "/")
    return low, low[:-1] + b"0"  # '0' is the byte after '/'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def connect(file: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``file``; read-only connections fall back to immutable mode on read-only media.

    A WAL database needs a writable folder for its shared-memory file even to be read;
    on a DVD or a read-only mount that fails, and SQLite's immutable mode reads the file
    as it is (writers checkpoint the WAL when they close, so the file is complete).
    """
    if not readonly:
        conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    else:
        uri = f"file:{quote(os.fsdecode(file))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            conn.close()
            if os.access(file.parent, os.W_OK):
                raise
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
    conn.text_factory = _text
    return conn


def error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()
    for needle, primary in (("disk is full", _SQLITE_FULL), ("readonly database", _SQLITE_READONLY),
                            ("malformed", _SQLITE_CORRUPT), ("not a database", _SQLITE_NOTADB)):
        if needle in text:
            return primary
    return None


def translate(exc: sqlite3.Error, file: Path, doing: str,
              damaged: Callable[[str], CbirError]) -> CbirError | None:
    """The typed error for a SQLite failure on ``file``, or None when it is none of the known kinds."""
    code = error_code(exc)
    if code == _SQLITE_FULL:
        return disk_full(file, doing)
    if code == _SQLITE_READONLY or (code in (_SQLITE_CANTOPEN, _SQLITE_IOERR) and not _writable(file)):
        return ReadOnlyError(f"cannot finish {doing}: {file} cannot be written (read-only filesystem or "
                             "folder); it can still be read")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return damaged(f"{file} is damaged ({exc})")
    return None


@contextlib.contextmanager
def guarded(file: Path, doing: str, damaged: Callable[[str], CbirError]) -> Iterator[None]:
    """Turn SQLite's disk-full, read-only and corruption errors into cbir's typed errors."""
    try:
        yield
    except sqlite3.Error as exc:
        typed = translate(exc, file, doing, damaged)
        if typed is None:
            raise
        raise typed from exc
    except OSError as exc:
        typed = from_os_error(exc, file, doing)
        if typed is None:
            raise
        raise typed from exc


def _writable(file: Path) -> bool:
    target = file if file.exists() else file.parent
    return os.access(target, os.W_OK)
