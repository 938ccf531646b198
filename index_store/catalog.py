"""Reading an index's catalog: ``CatalogReader``, the one read-only view every reader uses.

The SQLite catalog is the source of truth and holds every vector, so a crash at any moment loses at
most the uncommitted batch. Any number of readers run beside the one writer (index_store.writer);
SQLite's WAL gives each a consistent snapshot. The search index is built and published from it by
index_store.publish.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.errors import CbirError, DamagedFileError, IndexEmptyError, IndexIncompatibleError
from index_store import vectors as vec
from index_store.db import PATH_PARAM, connect, fs, prefix_bounds
from index_store.facts_table import FactsReads
from index_store.schema import SCHEMA_VERSION
from index_store.tag_table import TagReads
from index_store.when_table import SORTS, WhenReads

CATALOG_FILE = "catalog.sqlite"
ROW_COLUMNS = "id, path, size, mtime_ns, hash, category, category_probs"
CHUNK = 4096  # vectors read per query when streaming them
_OUR_TABLES = {"meta", "images", "vectors", "roots", "image_tags", "picture_facts", "sqlite_sequence"}


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    category: str | None = None
    category_probs: dict[str, float] | None = None

    def stat_matches(self, size: int, mtime_ns: int) -> bool:
        """Whether a file of this size and modification time is the one indexed (the stat check every
        indexing run trusts: an unchanged file is never opened)."""
        return self.size == size and self.mtime_ns == mtime_ns

    def on_disk_as_indexed(self) -> bool:
        """Whether the file at the row's path is still there, as it was indexed (by the stat check)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return False
        return self.stat_matches(info.st_size, info.st_mtime_ns)


def image_row(values: tuple) -> ImageRow:
    """An ImageRow from a ``SELECT ROW_COLUMNS`` result; the probabilities are decoded here, once (a damaged
    value reads as none: they are recomputed from the vector by any head)."""
    image_id, path, size, mtime_ns, digest, category, probs = values
    try:
        decoded = json.loads(probs) if probs else None
    except (ValueError, TypeError):
        decoded = None
    return ImageRow(image_id, path, size, mtime_ns, digest, category, decoded if isinstance(decoded, dict) else None)


def trunk_of(model_id: str) -> str:
    """The trunk part of a model id (``TRUNK+HEAD``): vectors of two models compare exactly when it is equal."""
    return model_id.split("+", 1)[0]


def catalog_exists(index_dir: Path) -> bool:
    """Whether the index has a catalog; an empty file is one whose first writer was killed before it committed
    anything, and counts as none."""
    catalog = index_dir / CATALOG_FILE
    try:
        return catalog.is_file() and (catalog.stat().st_size > 0
                                      or catalog.with_name(CATALOG_FILE + "-wal").exists())
    except OSError:
        return False


def damaged_catalog(message: str) -> CbirError:
    """The error for a catalog SQLite finds damaged (a scribbled or cut page): named, and how to start over."""
    return DamagedFileError(f"{message}; `cbir index --rebuild DIR` sets it aside and indexes your folders again "
                            "(your photos are untouched)")


def connect_readonly(index_dir: Path) -> sqlite3.Connection:
    catalog = index_dir / CATALOG_FILE
    if not catalog_exists(index_dir):
        raise IndexEmptyError(f"no index at {index_dir}: run `cbir index DIR` first")
    conn = None
    try:
        conn = connect(catalog, readonly=True, damaged=damaged_catalog)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables - _OUR_TABLES:  # another program's database
                raise IndexIncompatibleError(f"{catalog} is not a cbir index: it has no meta table")
            raise DamagedFileError(
                f"{catalog} holds no catalog: the first `cbir index` into it was cut off, or the "
                f"{CATALOG_FILE}-wal file beside it was lost; `cbir index --rebuild DIR` sets it aside and starts "
                "over (your photos are untouched)")
        conn.execute("SELECT 1 FROM meta LIMIT 1")
        check_schema(conn, index_dir)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if "malformed" in str(exc) or "corrupt" in str(exc):
            raise DamagedFileError(f"{catalog} is damaged ({exc}); `cbir index --rebuild DIR` sets it aside and "
                                   "starts over (your photos are untouched)") from exc
        raise IndexIncompatibleError(f"{catalog} is not a cbir index: {exc}") from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn


def check_schema(conn: sqlite3.Connection, index_dir: Path) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise IndexIncompatibleError(
            f"index {index_dir} was written by a newer cbir (schema {version}; this cbir reads "
            f"{SCHEMA_VERSION}): upgrade cbir, or use another --index"
        )
    if version < SCHEMA_VERSION:
        raise IndexIncompatibleError(
            f"index {index_dir} uses schema {version}, which this cbir cannot migrate: "
            "index your folders again into a new --index"
        )


class CatalogReader(TagReads, FactsReads, WhenReads):
    """A read-only view of a catalog: meta, rows, tags and vectors. Use as a context manager."""

    def __init__(self, index_dir: Path, conn: sqlite3.Connection) -> None:
        self.index_dir = index_dir
        self.conn = conn

    @classmethod
    def open(cls, index_dir: Path) -> CatalogReader:
        return cls(index_dir, connect_readonly(index_dir))

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    @property
    def model_id(self) -> str | None:
        return self.meta("model_id")

    @property
    def model_ref(self) -> str | None:
        """The model choice the index was built with ('default', 'imagenet' or a model folder)."""
        return self.meta("model_ref")

    def category_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT category, COUNT(*) FROM images WHERE category IS NOT NULL GROUP BY category ORDER BY category"
        ).fetchall()
        return dict(rows)

    @property
    def dim(self) -> int:
        return self._int_meta("dim")

    @property
    def generation(self) -> int:
        return self._int_meta("generation")

    def _int_meta(self, key: str) -> int:
        value = self.meta(key, "0") or "0"
        try:
            return int(value)
        except ValueError:
            raise damaged_catalog(f"{self.index_dir / CATALOG_FILE} is damaged (its '{key}' is {value!r}, not a "
                                  "number)") from None

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def require_images(self) -> None:
        """IndexEmptyError, saying how to fill it, when the index holds no image."""
        if self.count() == 0:
            raise IndexEmptyError(f"index {self.index_dir} holds no images: run `cbir index DIR` first")

    def tagged_count(self) -> int:
        """Images with at least one tag (0 for an index made before tags existed)."""
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'image_tags'").fetchone():
            return self.conn.execute("SELECT COUNT(DISTINCT image_id) FROM image_tags").fetchone()[0]
        return 0

    def rows_by_ids(self, ids: list[int]) -> dict[int, ImageRow]:
        out: dict[int, ImageRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(f"SELECT {ROW_COLUMNS} FROM images WHERE id IN ({marks})", part):
                out[r[0]] = image_row(r)
        return out

    def roots(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM roots ORDER BY path")]

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.index_dir.iterdir() if p.is_file())

    def close(self) -> None:
        self.conn.close()

    def row_by_path(self, path: str) -> ImageRow | None:
        found = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM images WHERE path = {PATH_PARAM}",
                                  (fs(path),)).fetchone()
        return image_row(found) if found else None

    def same_content_groups(self) -> list[list[int]]:
        """Ids of images that share their bytes (the same content hash), a list per content."""
        rows = self.conn.execute(
            "SELECT GROUP_CONCAT(id) FROM images GROUP BY hash HAVING COUNT(*) > 1").fetchall()
        return [[int(i) for i in ids.split(",")] for (ids,) in rows]

    def paths_under(self, folder: str) -> Iterator[str]:
        """Every indexed path under ``folder``, streamed (a range scan on the path index)."""
        low, high = prefix_bounds(folder)
        for (path,) in self.conn.execute(
                f"SELECT path FROM images WHERE path >= {PATH_PARAM} AND path < {PATH_PARAM}", (low, high)):
            yield path

    def rows_page(self, category: str | None, words: list[list[str]] | None, offset: int, limit: int,
                  sort: str = "path", month: str | None = None, place: str | None = None,
                  taken: tuple[str, str] | None = None) -> tuple[int, list[ImageRow], int]:
        """One page of the images of a category, tagged with every word (as ``find_tagged`` takes words),
        taken at ``place`` (a town or a country) and in ``taken`` ([start, end) times), in ``sort`` order
        (index_store.when_table.SORTS); how many there are in all, and the offset the page starts at: with
        ``month`` ("YYYY-MM", newest first only), the page where that month starts."""
        if words and not self.has_tags():
            return 0, [], offset
        if not self.has_when():
            if place or taken:
                return 0, [], offset
            sort = "path"  # a catalog from before times were stored, opened read-only
        condition, params = self.filter_clause(category, words, place, taken)
        clause = f" WHERE {condition}" if condition else ""
        total = self.conn.execute(f"SELECT COUNT(*) FROM images{clause}", params).fetchone()[0]
        if month and sort == "taken":
            newer = f"{clause} {'AND' if condition else 'WHERE'} taken_at >= ?"
            offset = self.conn.execute(f"SELECT COUNT(*) FROM images{newer}", [*params, f"{month}-32"]).fetchone()[0]
        rows = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM images{clause} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
                                 [*params, limit, offset])
        return total, [image_row(r) for r in rows], offset

    def filter_clause(self, category: str | None, words: list[list[str]] | None, place: str | None = None,
                      taken: tuple[str, str] | None = None) -> tuple[str, list]:
        """The WHERE condition (without the keyword) and its parameters for images of ``category``, tagged with
        every one of ``words``, taken at ``place`` and within ``taken``; ("", []) for every image."""
        where: list[str] = []
        params: list[object] = []
        if category:
            where.append("category = ?")
            params.append(category)
        for tag_ids in words or []:
            where.append(f"id IN (SELECT image_id FROM image_tags WHERE tag IN ({','.join('?' * len(tag_ids))}))")
            params += tag_ids
        if place:
            escaped = place.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            where.append("(place LIKE ? ESCAPE '!' OR place LIKE ? ESCAPE '!')")
            params += [f"{escaped},%", f"%, {escaped}"]
        if taken:
            where.append("taken_at >= ? AND taken_at < ?")
            params += list(taken)
        return " AND ".join(where), params

    def rows_by_hash(self, digest: str) -> list[ImageRow]:
        cur = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM images WHERE hash = ? ORDER BY id", (digest,))
        return [image_row(r) for r in cur]

    def rows_with_categories(self, categories: list[str]) -> list[ImageRow]:
        marks = ",".join("?" * len(categories))
        return [image_row(r) for r in self.conn.execute(
            f"SELECT {ROW_COLUMNS} FROM images WHERE category IN ({marks}) ORDER BY path", categories)]

    def vector(self, image_id: int) -> np.ndarray:
        blob = self.conn.execute("SELECT data FROM vectors WHERE id = ?", (image_id,)).fetchone()[0]
        return vec.decode_many([blob], self.dim)[0]

    def iter_vectors(self, ids: list[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) chunks, all of them or the given ids."""
        if ids is None:
            last = -1
            while True:
                rows = self.conn.execute(
                    "SELECT id, data FROM vectors WHERE id > ? ORDER BY id LIMIT ?", (last, CHUNK)
                ).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield np.array([r[0] for r in rows], np.int64), vec.decode_many((r[1] for r in rows), self.dim)
        else:
            yield from vectors_by_id(self.conn, ids, self.dim)

    @property
    def index_choice(self) -> str:
        """What the user asked for with --index-type (auto unless set)."""
        return self.meta("index_type", "auto") or "auto"

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` stored vectors drawn at random (all of them when there are fewer)."""
        ids = np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM vectors")), np.int64)
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
        parts = [vectors for _, vectors in self.iter_vectors(ids.tolist())]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def vectors_by_id(conn: sqlite3.Connection, ids: list[int], dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) chunks of the stored vectors of ``ids`` (those still in the catalog)."""
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT id, data FROM vectors WHERE id IN ({marks})", part).fetchall()
        yield np.array([r[0] for r in rows], np.int64), vec.decode_many((r[1] for r in rows), dim)
