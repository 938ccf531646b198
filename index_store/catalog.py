"""Reading an index's catalog without numpy or FAISS, so `cbir status` starts instantly."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import IndexEmptyError, IndexIncompatibleError
from index_store.db import connect
from index_store.schema import SCHEMA_VERSION

CATALOG_FILE = "catalog.sqlite"
ROW_COLUMNS = "id, path, size, mtime_ns, hash, category, category_probs"


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    category: str | None = None
    category_probs: dict[str, float] | None = None


def image_row(values: tuple) -> ImageRow:
    """An ImageRow from a ``SELECT ROW_COLUMNS`` result; the probabilities are decoded here, once."""
    image_id, path, size, mtime_ns, digest, category, probs = values
    return ImageRow(image_id, path, size, mtime_ns, digest, category, json.loads(probs) if probs else None)


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


def connect_readonly(index_dir: Path) -> sqlite3.Connection:
    catalog = index_dir / CATALOG_FILE
    if not catalog_exists(index_dir):
        raise IndexEmptyError(f"no index at {index_dir}: run `cbir index DIR` first")
    conn = None
    try:
        conn = connect(catalog, readonly=True)
        conn.execute("SELECT 1 FROM meta LIMIT 1")
        check_schema(conn, index_dir)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
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


class CatalogInfo:
    """Meta, counts and roots of a catalog: what status needs."""

    def __init__(self, index_dir: Path, conn: sqlite3.Connection) -> None:
        self.index_dir = index_dir
        self.conn = conn

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
        return int(self.meta("dim", "0") or 0)

    @property
    def generation(self) -> int:
        return int(self.meta("generation", "0") or 0)

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


class CatalogReader(CatalogInfo):
    """A read-only catalog connection without vectors."""

    @classmethod
    def open(cls, index_dir: Path) -> CatalogReader:
        return cls(index_dir, connect_readonly(index_dir))
