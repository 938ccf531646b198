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


def is_under(path: str, folder: str) -> bool:
    """Whether ``path`` lies inside ``folder`` (what ``prefix_bounds`` selects in SQL)."""
    return path.startswith(folder.rstrip("/") + "/")


def prefix_bounds(folder: str) -> tuple[bytes, bytes]:
    """Every path under ``folder`` sorts in [low, high) (bind both with ``PATH_PARAM``): a range scan."""
    low = fs(folder.rstrip("/") + "/")
    return low, low[:-1] + b"0"  # '0' is the byte after '/'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class _GuardedCursor(sqlite3.Cursor):
    """A cursor whose SQLite failures on a damaged file are cbir's typed errors (its connection says how)."""

    def execute(self, sql, parameters=(), /):
        with self.connection.guard():  # type: ignore[attr-defined]
            return super().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):
        with self.connection.guard():  # type: ignore[attr-defined]
            return super().executemany(sql, seq_of_parameters)

    def fetchone(self):
        with self.connection.guard():  # type: ignore[attr-defined]
            return super().fetchone()

    def fetchall(self):
        with self.connection.guard():  # type: ignore[attr-defined]
            return super().fetchall()

    def __next__(self):
        with self.connection.guard():  # type: ignore[attr-defined]
            return super().__next__()


class GuardedConnection(sqlite3.Connection):
    """A connection whose statements turn a damaged file's errors into DamagedFileError (or disk-full,
    read-only), wherever in cbir they run: a scribbled page met by any query is named, never "a bug"."""

    file: Path = Path()
    damaged: Callable[[str], CbirError] | None = None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        if self.damaged is None:
            yield
            return
        with guarded(self.file, "reading and writing it", self.damaged):
            yield

    def cursor(self, factory=_GuardedCursor):
        return super().cursor(factory)

    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, script, /):
        with self.guard():
            return super().executescript(script)


def connect(file: Path, *, readonly: bool = False,
            damaged: Callable[[str], CbirError] | None = None) -> sqlite3.Connection:
    """Open ``file``; read-only connections fall back to immutable mode on read-only media. With ``damaged``,
    every statement's failure on a damaged file becomes the error ``damaged`` makes of its message.

    A WAL database needs a writable folder for its shared-memory file even to be read;
    on a DVD or a read-only mount that fails, and SQLite's immutable mode reads the file
    as it is (writers checkpoint the WAL when they close, so the file is complete).
    """
    if not readonly:
        conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False, factory=GuardedConnection)
    else:
        uri = f"file:{quote(os.fsdecode(file))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               factory=GuardedConnection)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            conn.close()
            if os.access(file.parent, os.W_OK):
                raise
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False, factory=GuardedConnection)
    conn.text_factory = _text
    assert isinstance(conn, GuardedConnection)
    conn.file, conn.damaged = file, damaged
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
