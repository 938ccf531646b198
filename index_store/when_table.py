"""When and where each image was taken (indexer.when_where), in columns of the images table: for the library's
timeline, its month scrubber, `cbir find --taken` and place words.

``taken_at`` is text, "YYYY-MM-DD HH:MM:SS" as the photo's clock showed it, so that it sorts as it reads and a
month is its first seven characters; ``taken_source`` says whether it came from EXIF or the file's time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from index_store.db import PATH_PARAM, prefix_bounds

WHEN_COLUMNS = (("taken_at", "TEXT"), ("taken_source", "TEXT"), ("taken_offset", "TEXT"), ("camera", "TEXT"),
                ("latitude", "REAL"), ("longitude", "REAL"), ("place", "TEXT"))
# Each order walks an index (below, or the path's own), so that a page deep in 10^5 images costs a walk of the
# index, not a sort of the table. Images of unknown date (NULL) come last in a descending walk.
SORTS = {"taken": "taken_at DESC, id DESC", "path": "path", "size": "size DESC, id DESC"}


class WhenReads:
    """Reading when and where; part of the catalog reader (index_store.catalog)."""

    conn: sqlite3.Connection

    def has_when(self) -> bool:
        return "taken_at" in {row[1] for row in self.conn.execute("PRAGMA table_info(images)")}

    def when_of(self, ids: list[int]) -> dict[int, dict]:
        """id -> {taken_at, taken_source, taken_offset, camera, latitude, longitude, place} (None: not known)."""
        if not ids or not self.has_when():
            return {}
        names = [name for name, _ in WHEN_COLUMNS]
        out: dict[int, dict] = {}
        for start in range(0, len(ids), 500):
            part = ids[start: start + 500]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(f"SELECT id, {', '.join(names)} FROM images WHERE id IN ({marks})", part):
                out[row[0]] = dict(zip(names, row[1:], strict=True))
        return out

    def months(self, where: str = "", params: tuple | list = ()) -> list[tuple[str, int]]:
        """(YYYY-MM, images) of every month with images taken, newest first, among the rows ``where`` keeps."""
        if not self.has_when():
            return []
        clause = f"WHERE taken_at IS NOT NULL{' AND ' + where if where else ''}"
        return [(m, n) for m, n in self.conn.execute(
            f"SELECT substr(taken_at, 1, 7) AS m, COUNT(*) FROM images {clause} GROUP BY m ORDER BY m DESC", params)]

    def ids_taken(self, start: str, end: str) -> set[int]:
        """Ids of images taken from ``start`` up to, not including, ``end`` (both "YYYY-MM-DD...")."""
        if not self.has_when():
            return set()
        return {r[0] for r in self.conn.execute("SELECT id FROM images WHERE taken_at >= ? AND taken_at < ?",
                                                (start, end))}

    def ids_at_place(self, word: str) -> set[int]:
        """Ids of images whose place names ``word`` (a town or a country, in any case)."""
        if not self.has_when():
            return set()
        escaped = word.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return {r[0] for r in self.conn.execute(
            "SELECT id FROM images WHERE place LIKE ? ESCAPE '!' OR place LIKE ? ESCAPE '!'",
            (f"{escaped},%", f"%, {escaped}"))}

    def place_words(self, prefix: str, limit: int = 20) -> list[str]:
        """Towns and countries of the places photos were taken that start with ``prefix`` (any case)."""
        if not self.has_when():
            return []
        found: set[str] = set()
        for (place,) in self.conn.execute("SELECT DISTINCT place FROM images WHERE place IS NOT NULL LIMIT 5000"):
            found |= {part.strip() for part in place.split(",") if part.strip().lower().startswith(prefix.lower())}
        return sorted(found)[:limit]

    def rows_missing_when(self, folder: str) -> list[tuple[int, str, int]]:
        """(id, path, mtime_ns) of the images under ``folder`` whose time is not known yet."""
        if not self.has_when():
            return []
        low, high = prefix_bounds(folder)
        return list(self.conn.execute(
            f"SELECT id, path, mtime_ns FROM images WHERE path >= {PATH_PARAM} AND path < {PATH_PARAM} "
            "AND taken_at IS NULL", (low, high)))


    def rows_missing_when_of(self, ids: list[int]) -> list[tuple[int, str, int]]:
        """``rows_missing_when`` among the images ``ids``."""
        if not self.has_when():
            return []
        found: list[tuple[int, str, int]] = []
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            found += self.conn.execute(f"SELECT id, path, mtime_ns FROM images WHERE id IN ({marks}) "
                                       "AND taken_at IS NULL", part).fetchall()
        return found


class WhenWrites:
    """Writing when and where; part of the index store (index_store.writer)."""

    conn: sqlite3.Connection
    _write: Callable[..., sqlite3.Cursor]

    def _ensure_when_schema(self) -> None:
        """Give a catalog made before times and places were stored their columns (filled by the next index run)."""
        present = {row[1] for row in self.conn.execute("PRAGMA table_info(images)")}
        for name, kind in WHEN_COLUMNS:
            if name not in present:
                self._write(f"ALTER TABLE images ADD COLUMN {name} {kind}")
        self._write("CREATE INDEX IF NOT EXISTS images_taken ON images(taken_at, id)")
        self._write("CREATE INDEX IF NOT EXISTS images_size ON images(size, id)")

    def set_when(self, image_id: int, taken_at: str | None, taken_source: str | None, taken_offset: str | None,
                 camera: str | None, latitude: float | None, longitude: float | None, place: str | None) -> None:
        self._write("UPDATE images SET taken_at = ?, taken_source = ?, taken_offset = ?, camera = ?, latitude = ?, "
                    "longitude = ?, place = ? WHERE id = ?",
                    (taken_at, taken_source, taken_offset, camera, latitude, longitude, place, image_id))
