"""Pictures' facts for the duplicate check, kept beside the vectors so that a scan never decodes a file again.

One row per content hash (byte-identical copies share it): an opaque blob that
indexer.image_facts encodes (a grey thumbnail, the detail version, the sizes
and EXIF facts a person weighs), and the version of that encoding. The index
store does not read the blobs; a row whose version is not the current one
counts as missing and is computed again by the next ``cbir index``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from index_store.db import PATH_PARAM, prefix_bounds

_CHUNK = 500


class FactsReads:
    """Reading pictures' facts; part of the catalog reader (index_store.catalog)."""

    conn: sqlite3.Connection

    def has_facts_table(self) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'picture_facts'").fetchone() is not None

    def facts_blobs(self, hashes: Iterable[str], version: int) -> dict[str, bytes]:
        """hash -> stored blob, for the hashes that have one of ``version``."""
        if not self.has_facts_table():
            return {}  # a catalog from before facts were stored; the caller decodes the files
        wanted = sorted(set(hashes))
        out: dict[str, bytes] = {}
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start: start + _CHUNK]
            marks = ",".join("?" * len(part))
            out.update(self.conn.execute(
                f"SELECT hash, data FROM picture_facts WHERE version = ? AND hash IN ({marks})", [version, *part]))
        return out

    def paths_missing_facts(self, folder: str, version: int) -> list[tuple[str, str]]:
        """(path, hash) of one file per content under ``folder`` that has no facts of ``version``."""
        if not self.has_facts_table():
            return []
        low, high = prefix_bounds(folder)
        return list(self.conn.execute(
            "SELECT MIN(i.path), i.hash FROM images i LEFT JOIN picture_facts f ON f.hash = i.hash "
            f"AND f.version = ? WHERE i.path >= {PATH_PARAM} AND i.path < {PATH_PARAM} AND f.hash IS NULL "
            "GROUP BY i.hash", (version, low, high)))


class FactsWrites:
    """Writing pictures' facts; part of the index store (index_store.writer)."""

    _write: Callable[..., sqlite3.Cursor]  # the writer's, inside its transaction

    def put_facts(self, digest: str, version: int, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO picture_facts (hash, version, data) VALUES (?, ?, ?)",
                    (digest, version, data))

    def prune_facts(self) -> None:
        """Drop the facts of contents no indexed file has any more."""
        self._write("DELETE FROM picture_facts WHERE NOT EXISTS "
                    "(SELECT 1 FROM images i WHERE i.hash = picture_facts.hash)")
