"""The single writer of an index: rows, vectors and tags into the catalog, then the search index published.

Batches are committed whole, so a crash at any moment loses at most the batch in flight; ``finish()``
publishes the search index (index_store.publish) for the new generation.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cbir.errors import DamagedFileError, IndexIncompatibleError, from_os_error, mixed_models
from index_store import check
from index_store import vectors as vec
from index_store.atomic import remove_stale_temporaries
from index_store.catalog import CATALOG_FILE, CatalogReader, catalog_exists, check_schema, damaged_catalog, trunk_of
from index_store.db import PATH_PARAM, connect, fs, prefix_bounds, translate
from index_store.facts_table import FactsWrites
from index_store.lock import WriterLock
from index_store.manifest import MANIFEST_FILE
from index_store.publish import FAISS_FILE, publish, remove_unused_data_files
from index_store.schema import DDL, SCHEMA_VERSION
from index_store.tag_table import TagWrites
from index_store.when_table import WhenWrites

log = logging.getLogger(__name__)

# Decides, from the catalog as it is (None for a new index), the (model id, dimension, model reference)
# the writer works under.
Claim = Callable[["CatalogReader | None"], tuple[str, int, "str | None"]]


def fixed_claim(model_id: str, dim: int, model_ref: str | None = None) -> Claim:
    """The claim of a writer that knows its model beforehand (scripts, tests)."""
    return lambda reader: (model_id, dim, model_ref)


class IndexStore(TagWrites, FactsWrites, WhenWrites, CatalogReader):
    """The single writer. Use as a context manager; ``finish()`` publishes the FAISS file."""

    def __init__(self, index_dir: Path, conn: sqlite3.Connection, lock: WriterLock) -> None:
        super().__init__(index_dir, conn)
        self._lock = lock
        self._in_tx = False
        self._dirty = False
        self._start_generation = self.generation
        self._added: set[int] = set()
        self._removed: set[int] = set()
        self.patched = False  # whether the last publish patched the previous FAISS file in place
        self.categories_from: str | None = None  # set when opened under another head of the same trunk

    @classmethod
    def open(cls, index_dir: Path, claim: Claim,  # type: ignore[override]  # a writer is opened under a model
             lock: WriterLock | None = None) -> IndexStore:
        """Open for writing under the model ``claim`` gives (from the catalog as it is, read on the same
        connection); pass ``lock`` when the caller took it earlier (to fail fast)."""
        if lock is None:
            lock = cls.lock(index_dir)
        catalog = index_dir / CATALOG_FILE
        try:
            # A new index is claimed before its catalog is made, so that a refused claim (a model that cannot
            # load) leaves no empty catalog behind.
            decided = claim(None) if not catalog_exists(index_dir) else None
            conn = connect(catalog, damaged=damaged_catalog)
        except BaseException:
            lock.release()
            raise
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                has_meta = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).fetchone()
                if has_meta:
                    check_schema(conn, index_dir)
                conn.executescript(DDL)
            except sqlite3.Error as exc:
                typed = translate(exc, catalog, "opening the index", damaged_catalog)
                if typed is not None:
                    raise typed from exc
                raise IndexIncompatibleError(f"{catalog} is not a cbir index: {exc}") from exc
            # Temporary files of a writer killed mid-publish; we hold the lock, so none is in use.
            remove_stale_temporaries(index_dir, [FAISS_FILE, MANIFEST_FILE])
            store = cls(index_dir, conn, lock)
            remove_unused_data_files(index_dir)
            store._claim(*(decided or claim(store)))
            store._ensure_tag_schema()
            store._ensure_when_schema()
            store.commit()
            store._repair()
            return store
        except BaseException:
            # Any refusal (foreign file, newer schema, other model) frees both resources.
            conn.close()
            lock.release()
            raise

    def _repair(self) -> None:
        """Mend what the quick check finds and the catalog can rebuild: images whose vectors are damaged or
        missing are forgotten (the walk finds their files and embeds them again), vectors of no image are
        dropped, and missing tags are recomputed (by clearing the version they were computed with)."""
        problems = check.quick(self)
        if not problems:
            return
        fatal = [p for p in problems if p.part == "catalog" and p.repair != check.REINDEX]
        if fatal:
            raise DamagedFileError(f"index {self.index_dir} is damaged: {fatal[0].detail}; {fatal[0].repair}")
        damaged = check.damaged_image_ids(self)
        for start in range(0, len(damaged), 500):
            part = damaged[start:start + 500]
            marks = ",".join("?" * len(part))
            self._write(f"DELETE FROM image_tags WHERE image_id IN ({marks})", part)
            self._write(f"DELETE FROM vectors WHERE id IN ({marks})", part)
            self._write(f"DELETE FROM images WHERE id IN ({marks})", part)
        self._forget(damaged)
        self._write("DELETE FROM vectors WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = vectors.id)")
        if any(p.part == "tags" for p in problems):
            self._write("DELETE FROM meta WHERE key = 'tags_version'")
        self._dirty = True
        self.commit()
        for problem in problems:
            log.warning("repairing index %s: %s: %s; %s", self.index_dir, problem.part, problem.detail,
                        problem.repair)

    @staticmethod
    def lock(index_dir: Path, wait: Callable[[str], object] | None = None) -> WriterLock:
        """Take the single-writer lock, creating the index folder if needed (``wait``: see WriterLock)."""
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, index_dir, "creating the index") or exc from None
        lock = WriterLock(index_dir)
        lock.acquire(wait)
        return lock

    def _claim(self, model_id: str, dim: int, model_ref: str | None) -> None:
        existing = self.model_id
        if existing is None:
            self._write("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._write("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)", (model_id,))
            self._write("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(dim),))
            self._write("INSERT OR REPLACE INTO meta VALUES ('generation', '0')", ())
            self._write("INSERT OR REPLACE INTO meta VALUES ('run', '0')", ())
            if model_ref:
                self._write("INSERT OR REPLACE INTO meta VALUES ('model_ref', ?)", (model_ref,))
            self.commit()
        elif trunk_of(existing) != trunk_of(model_id):
            raise mixed_models(self.index_dir, f"{self.model_ref or existing} ({existing})",
                               f"{model_ref or model_id} ({model_id})")
        elif existing != model_id:
            # Same vectors, another head: the stored categories are the old head's until recategorize().
            self.categories_from = existing

    def recategorize(self, categorize: Callable[[np.ndarray], list[tuple[str | None, dict | None]]],
                     model_id: str, model_ref: str | None) -> int:
        """Recompute every image's category from its stored vector with another head; no embedding.

        ``categorize`` maps (n, dim) vectors to (category, probabilities) per row ([] for a model
        without categories). The model must share the index's trunk.
        """
        if trunk_of(model_id) != trunk_of(self.model_id or model_id):
            raise mixed_models(self.index_dir, self.model_ref or self.model_id or "?", model_ref or model_id)
        updated = 0
        for ids, vectors in self.iter_vectors():
            rows = categorize(vectors) or [(None, None)] * len(ids)
            for image_id, (category, probs) in zip(ids.tolist(), rows, strict=True):
                self._write("UPDATE images SET category = ?, category_probs = ? WHERE id = ?",
                            (category, _json(probs), image_id))
            updated += len(ids)
        self._write("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)", (model_id,))
        if model_ref:
            self._write("INSERT OR REPLACE INTO meta VALUES ('model_ref', ?)", (model_ref,))
        self.commit()
        self.categories_from = None
        return updated

    # -- transactions -------------------------------------------------------
    def _write(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self._write_many(sql, [params], one=True)

    def _write_many(self, sql: str, rows: list, one: bool = False) -> sqlite3.Cursor:
        try:
            if not self._in_tx:
                self.conn.execute("BEGIN IMMEDIATE")
                self._in_tx = True
            return self.conn.execute(sql, rows[0]) if one else self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._typed(exc) from exc

    def commit(self) -> None:
        if not self._in_tx:
            return
        try:
            if self._dirty:
                self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                self._dirty = False
            self.conn.execute("COMMIT")
            self._in_tx = False
        except sqlite3.Error as exc:
            raise self._typed(exc) from exc

    def rollback(self) -> None:
        # SQLite rolls back by itself after some errors (a full disk); a second ROLLBACK would fail
        # and hide the first error.
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is closed next; SQLite drops an unfinished transaction then
        self._in_tx = False
        self._dirty = False

    def _typed(self, exc: sqlite3.Error) -> Exception:
        typed = translate(exc, self.index_dir / CATALOG_FILE, "writing the index", damaged_catalog)
        return typed if typed is not None else exc

    # -- runs and roots -----------------------------------------------------
    def begin_run(self, root: str, register: bool = True) -> int:
        """Start a walk of ``root``; ``register=False`` for a folder inside an indexed root."""
        run = int(self.meta("run", "0") or 0) + 1
        self._write("UPDATE meta SET value = ? WHERE key = 'run'", (str(run),))
        if register:
            self._write(f"INSERT OR IGNORE INTO roots (path, added_at) VALUES ({PATH_PARAM}, ?)",
                        (fs(root), time.time()))
        self.commit()
        return run

    def finish_root(self, root: str, run: int) -> int:
        """Sweep: drop every image under ``root`` the completed walk did not see."""
        low, high = prefix_bounds(root)
        ids = [
            r[0]
            for r in self.conn.execute(
                f"SELECT id FROM images WHERE path >= {PATH_PARAM} AND path < {PATH_PARAM} AND seen_run != ?",
                (low, high, run),
            )
        ]
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            self._write(f"DELETE FROM vectors WHERE id IN ({marks})", part)
            self._write(f"DELETE FROM images WHERE id IN ({marks})", part)
        self._forget(ids)
        self._write(f"UPDATE roots SET last_indexed_at = ? WHERE path = {PATH_PARAM}", (time.time(), fs(root)))
        self.commit()
        return len(ids)

    # -- image rows -----------------------------------------------------------
    def mark_seen(self, image_id: int, run: int) -> None:
        self._write("UPDATE images SET seen_run = ? WHERE id = ?", (run, image_id))

    def add(
        self, path: str, size: int, mtime_ns: int, digest: str, vector: np.ndarray, run: int,
        category: str | None = None, category_probs: dict[str, float] | None = None,
        feature_norm: float | None = None,
    ) -> int:
        cur = self._write(
            "INSERT INTO images (path, size, mtime_ns, hash, model_id, category, category_probs, "
            f"indexed_at, seen_run, feature_norm) VALUES ({PATH_PARAM}, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fs(path), size, mtime_ns, digest, self.model_id, category, _json(category_probs), time.time(), run,
             feature_norm),
        )
        image_id = int(cur.lastrowid or 0)
        self._write("INSERT INTO vectors (id, data) VALUES (?, ?)", (image_id, vec.encode(vector)))
        self._added.add(image_id)
        self._dirty = True
        return image_id

    def replace_content(
        self, image_id: int, size: int, mtime_ns: int, digest: str, vector: np.ndarray, run: int,
        category: str | None = None, category_probs: dict[str, float] | None = None,
        feature_norm: float | None = None,
    ) -> None:
        self._write(
            "UPDATE images SET size = ?, mtime_ns = ?, hash = ?, category = ?, category_probs = ?, "
            "indexed_at = ?, seen_run = ?, feature_norm = ?, taken_at = NULL WHERE id = ?",
            (size, mtime_ns, digest, category, _json(category_probs), time.time(), run, feature_norm, image_id),
        )
        self._write("UPDATE vectors SET data = ? WHERE id = ?", (vec.encode(vector), image_id))
        self._removed.add(image_id)
        self._added.add(image_id)
        self._dirty = True

    def update_stat(self, image_id: int, size: int, mtime_ns: int, run: int) -> None:
        self._write(
            "UPDATE images SET size = ?, mtime_ns = ?, seen_run = ? WHERE id = ?", (size, mtime_ns, run, image_id)
        )

    def move(self, image_id: int, new_path: str, size: int, mtime_ns: int, run: int) -> None:
        """A renamed or moved file keeps its id and vector."""
        self._write(
            f"UPDATE images SET path = {PATH_PARAM}, size = ?, mtime_ns = ?, seen_run = ? WHERE id = ?",
            (fs(new_path), size, mtime_ns, run, image_id),
        )
        self._dirty = True

    def relocate(self, image_id: int, new_path: str) -> None:
        """The file moved (by cbir clean or undo) with its times kept: only its path changes."""
        self._write(f"UPDATE images SET path = {PATH_PARAM} WHERE id = ?", (fs(new_path), image_id))

    def remove(self, image_id: int) -> None:
        self._write("DELETE FROM image_tags WHERE image_id = ?", (image_id,))
        self._write("DELETE FROM vectors WHERE id = ?", (image_id,))
        self._write("DELETE FROM images WHERE id = ?", (image_id,))
        self._forget([image_id])

    def _forget(self, ids: list[int]) -> None:
        if ids:
            self._dirty = True
            self._removed.update(ids)
            self._added.difference_update(ids)

    # -- publishing -----------------------------------------------------------
    def set_index_type(self, choice: str) -> None:
        """Record --index-type; the next ``finish()`` rebuilds the search index if the kind changes."""
        if choice != self.index_choice:
            self._write("INSERT OR REPLACE INTO meta VALUES ('index_type', ?)", (choice,))
            self.commit()

    def finish(self) -> None:
        """Commit, then publish the search index and manifest for the new generation."""
        if self._removed:
            self.prune_facts()
        self.commit()
        patched = publish(self, self._added, self._removed, self._start_generation)
        if patched is not None:
            self.patched = patched
            self._added.clear()
            self._removed.clear()
            self._start_generation = self.generation

    def close(self) -> None:
        try:
            self.commit()
            # An empty WAL lets the index be read from read-only media (see index_store.db).
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # the WAL is still valid; a later writer checkpoints it
        finally:
            super().close()
            self._lock.release()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            # Only whole batches are committed; a half-written one is dropped, and
            # the next run redoes it.
            self.rollback()
        self.close()


def _json(value: dict[str, float] | None) -> str | None:
    return json.dumps(value, sort_keys=True) if value is not None else None
