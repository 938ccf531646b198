"""The index on disk: one writer (IndexStore) or many readers (IndexReader).

The SQLite catalog is the source of truth and holds every vector, so a crash
at any moment loses at most the uncommitted batch. The FAISS file is a cache
of the catalog's vectors, stamped in the manifest with the catalog generation
it was built from; when the stamps differ it is rebuilt from the catalog.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cbir.errors import CbirError, DamagedFileError, IndexIncompatibleError, from_os_error, mixed_models
from index_store import vectors as vec
from index_store.atomic import atomic_write, remove_stale_temporaries
from index_store.catalog import (
    CATALOG_FILE,
    ROW_COLUMNS,
    CatalogInfo,
    ImageRow,
    check_schema,
    connect_readonly,
    image_row,
    trunk_of,
)
from index_store.db import PATH_PARAM, connect, fs, prefix_bounds, translate
from index_store.faiss_index import (
    IndexPlan,
    build_index,
    can_patch,
    cap_probes,
    describe_index,
    estimate_bytes,
    estimate_disk_bytes,
    faiss_of,
    plan_index,
    read_index,
    tune,
    write_index,
)
from index_store.hashing import file_crc32
from index_store.lock import WriterLock
from index_store.manifest import MANIFEST_FILE, Manifest, read_manifest, write_manifest
from index_store.ondisk import DATA_SUFFIX, Reranked, data_file_name, open_ondisk, patch_ondisk
from index_store.schema import DDL, SCHEMA_VERSION
from index_store.tag_table import TagReads, TagWrites

log = logging.getLogger(__name__)

FAISS_FILE = "vectors.faiss"
_CHUNK = 4096
def _damaged_catalog(message: str) -> CbirError:
    return DamagedFileError(f"{message}: index your folders again into a new --index (your photos are untouched)")


class _Catalog(CatalogInfo, TagReads):
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

    def rows_page(self, category: str | None, words: list[list[str]] | None, offset: int, limit: int
                  ) -> tuple[int, list[ImageRow]]:
        """One page of the images in path order, of a category and tagged with every word (as ``find_tagged``
        takes words), and how many there are in all."""
        if words and not self.has_tags():
            return 0, []
        where: list[str] = []
        params: list[object] = []
        if category:
            where.append("category = ?")
            params.append(category)
        for tag_ids in words or []:
            where.append(f"id IN (SELECT image_id FROM image_tags WHERE tag IN ({','.join('?' * len(tag_ids))}))")
            params += tag_ids
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.conn.execute(f"SELECT COUNT(*) FROM images{clause}", params).fetchone()[0]
        rows = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM images{clause} ORDER BY path LIMIT ? OFFSET ?",
                                 [*params, limit, offset])
        return total, [image_row(r) for r in rows]

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
                    "SELECT id, data FROM vectors WHERE id > ? ORDER BY id LIMIT ?", (last, _CHUNK)
                ).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield np.array([r[0] for r in rows], np.int64), vec.decode_many((r[1] for r in rows), self.dim)
        else:
            yield from _vectors_by_id(self.conn, ids, self.dim)

    @property
    def index_choice(self) -> str:
        """What the user asked for with --index-type (auto unless set)."""
        return self.meta("index_type", "auto") or "auto"

    def index_plan(self) -> IndexPlan:
        return plan_index(self.index_choice, self.count())

    def _fresh_faiss(self):
        """The FAISS file if its manifest matches this catalog and the file matches its manifest, else None."""
        manifest = read_manifest(self.index_dir)
        path = self.index_dir / FAISS_FILE
        if not manifest or manifest.generation != self.generation or manifest.model_id != self.model_id:
            return None
        if not _file_matches(path, manifest) or not _data_matches(self.index_dir, manifest):
            _report_mismatch(path, manifest)
            return None
        try:
            if manifest.index_type == "ivfpq":
                index = self._reranked(open_ondisk(path, self.index_dir / manifest.ivf_data_file))
            else:
                index = read_index(path)
        except Exception:  # a torn or foreign file: the catalog can always rebuild it
            log.warning("FAISS file %s is unreadable; rebuilding it from the catalog", path)
            return None
        if index.ntotal != self.count() or describe_index(index) != (manifest.index_type, manifest.nlist):
            log.warning("%s is not the index its manifest describes; rebuilding it from the catalog", path)
            return None
        tune(index, IndexPlan(manifest.index_type, manifest.nlist, manifest.nprobe))
        return index

    def _reranked(self, index, keep_alive: object = None) -> Reranked:
        """An on-disk index that re-scores its shortlists from this catalog, on a connection of its own (the
        index may outlive this reader, as in the web server)."""
        conn = connect(self.index_dir / CATALOG_FILE, readonly=True)
        lock = threading.Lock()
        dim = self.dim

        def vectors_of(ids: list[int]) -> dict[int, np.ndarray]:
            with lock:
                return {int(i): v for found, vectors in _vectors_by_id(conn, ids, dim)
                        for i, v in zip(found, vectors, strict=True)}

        return Reranked(index, vectors_of, keep_alive)

    def load_faiss(self, max_nprobe: int | None = None):
        """The published search index (rebuilt from the catalog when stale); ``max_nprobe`` caps how
        many inverted lists an IVF index visits per query, for searches that only want close neighbours."""
        index = self._fresh_faiss()
        if index is None:
            index = self._build_faiss(self.index_plan())
        if max_nprobe is not None:
            cap_probes(index, max_nprobe)
        return index

    def _build_faiss(self, plan: IndexPlan, data_path: Path | None = None):
        """Build the search index from the catalog; an on-disk one writes its lists to ``data_path``, or, for a
        reader that found the published one stale, to a temporary folder that lives as long as the index."""
        count = self.count()
        log.info("building the search index (%s) from %d stored vectors, about %.0f MB", plan.description, count,
                 (estimate_bytes(plan, count, self.dim) + estimate_disk_bytes(plan, count)) / 1e6)
        if plan.kind != "ivfpq":
            return build_index(plan, self.dim, self.iter_vectors, self.sample_vectors)
        keep_alive = None
        if data_path is None:
            keep_alive = tempfile.TemporaryDirectory(prefix="cbir-ivfpq-")
            data_path = Path(keep_alive.name) / data_file_name(FAISS_FILE, self.generation)
        index = build_index(plan, self.dim, self.iter_vectors, self.sample_vectors, data_path)
        return self._reranked(index, keep_alive)

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` stored vectors drawn at random (all of them when there are fewer)."""
        ids = np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM vectors")), np.int64)
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
        parts = [vectors for _, vectors in self.iter_vectors(ids.tolist())]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


class IndexReader(_Catalog):
    """Read-only view: any number of readers may run beside the one writer."""

    @classmethod
    def open(cls, index_dir: Path) -> IndexReader:
        return cls(index_dir, connect_readonly(index_dir))


class IndexStore(TagWrites, _Catalog):
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
    def open(cls, index_dir: Path, model_id: str, dim: int, lock: WriterLock | None = None,
             model_ref: str | None = None) -> IndexStore:
        """Open for writing; pass ``lock`` when the caller took it earlier (to fail fast)."""
        if lock is None:
            lock = cls.lock(index_dir)
        catalog = index_dir / CATALOG_FILE
        try:
            conn = connect(catalog)
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
                typed = translate(exc, catalog, "opening the index", _damaged_catalog)
                if typed is not None and not isinstance(typed, DamagedFileError):
                    raise typed from exc
                raise IndexIncompatibleError(f"{catalog} is not a cbir index: {exc}") from exc
            # Temporary files of a writer killed mid-publish; we hold the lock, so none is in use.
            remove_stale_temporaries(index_dir, [FAISS_FILE, MANIFEST_FILE])
            store = cls(index_dir, conn, lock)
            store._remove_unused_data_files()
            store._claim(model_id, dim, model_ref)
            store._ensure_tag_schema()
            store.commit()
            return store
        except BaseException:
            # Any refusal (foreign file, newer schema, other model) frees both resources.
            conn.close()
            lock.release()
            raise

    @staticmethod
    def lock(index_dir: Path) -> WriterLock:
        """Take the single-writer lock, creating the index folder if needed."""
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, index_dir, "creating the index") or exc from None
        lock = WriterLock(index_dir)
        lock.acquire()
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
        typed = translate(exc, self.index_dir / CATALOG_FILE, "writing the index", _damaged_catalog)
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
            "indexed_at = ?, seen_run = ?, feature_norm = ? WHERE id = ?",
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
        """Commit, then write the FAISS file and manifest for the new generation."""
        self.commit()
        manifest = read_manifest(self.index_dir)
        faiss_path = self.index_dir / FAISS_FILE
        plan = self.index_plan()
        same_plan = manifest is not None and (manifest.index_type, manifest.nlist) == (plan.kind, plan.nlist)
        intact = manifest is not None and same_plan and _file_matches(faiss_path, manifest)
        if manifest is not None and intact and (manifest.generation, manifest.model_id) == (self.generation,
                                                                                             self.model_id):
            return  # nothing changed since the last publish
        self.patched = False
        index = None
        # An on-disk index's lists go to a new file named for this generation; readers keep the old one.
        data_path = self.index_dir / data_file_name(FAISS_FILE, self.generation) if plan.kind == "ivfpq" else None
        if (manifest is not None and intact and manifest.generation == self._start_generation
                and manifest.model_id == self.model_id and can_patch(plan, removing=bool(self._removed))):
            index = self._apply_changes(faiss_path, plan, manifest, data_path)
            self.patched = index is not None
        if index is None:
            if same_plan and manifest is not None and not intact:
                _report_mismatch(faiss_path, manifest)
            index = self._build_faiss(plan, data_path)
        written: dict[str, int] = {}

        def write(tmp: Path) -> None:
            write_index(faiss_of(index), tmp)
            written.update(bytes=os.path.getsize(tmp), crc32=file_crc32(tmp))

        atomic_write(faiss_path, write)
        write_manifest(
            self.index_dir,
            Manifest(SCHEMA_VERSION, self.model_id or "", self.dim, int(index.ntotal), self.generation, plan.kind,
                     nlist=plan.nlist, nprobe=plan.nprobe, index_choice=self.index_choice,
                     description=plan.description,
                     estimated_bytes=estimate_bytes(plan, int(index.ntotal), self.dim),
                     faiss_bytes=written["bytes"], faiss_crc32=written["crc32"],
                     ivf_data_file=data_path.name if data_path is not None else "",
                     ivf_data_bytes=os.path.getsize(data_path) if data_path is not None else 0),
        )
        self._remove_unused_data_files()
        self._added.clear()
        self._removed.clear()
        self._start_generation = self.generation

    def _apply_changes(self, faiss_path: Path, plan: IndexPlan, manifest: Manifest, data_path: Path | None):
        """Patch the published FAISS index with this session's changes instead of rebuilding it."""
        if plan.kind == "ivfpq" and data_path is not None:
            if data_path.name == manifest.ivf_data_file:
                return None
            try:
                index = patch_ondisk(faiss_path, self.index_dir / manifest.ivf_data_file, data_path,
                                     np.fromiter(self._removed, np.int64),
                                     self.iter_vectors(sorted(self._added)))
            except Exception as exc:  # a damaged published index: the catalog rebuilds it
                log.warning("could not patch %s (%s); rebuilding it from the catalog", faiss_path, exc)
                return None
            tune(index, plan)
            return self._reranked(index) if index.ntotal == self.count() else None
        try:
            index = read_index(faiss_path)
        except Exception:
            return None
        if describe_index(index) != (plan.kind, plan.nlist):
            return None
        tune(index, plan)
        if self._removed:
            index.remove_ids(np.fromiter(self._removed, np.int64))
        for ids, vectors in self.iter_vectors(sorted(self._added)):
            if len(ids):
                index.add_with_ids(vectors, ids)
        return index if index.ntotal == self.count() else None

    def _remove_unused_data_files(self) -> None:
        """On-disk lists of earlier generations, and shards a killed build left; a reader that has one mapped
        keeps reading it (the file lives on until it is unmapped)."""
        manifest = read_manifest(self.index_dir)
        keep = manifest.ivf_data_file if manifest else ""
        for path in [*self.index_dir.glob(f"*{DATA_SUFFIX}"), *self.index_dir.glob(f".*{DATA_SUFFIX}.shard*.tmp")]:
            if path.name != keep:
                try:
                    path.unlink()
                except OSError:
                    pass

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


def _report_mismatch(path: Path, manifest: Manifest) -> None:
    if manifest.faiss_crc32 is None:
        log.info("%s was written by an older cbir that kept no checksum; rebuilding it once", path)
    else:
        log.warning("%s does not match the checksum in its manifest; rebuilding it from the catalog", path)


def _vectors_by_id(conn: sqlite3.Connection, ids: list[int], dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) chunks of the stored vectors of ``ids`` (those still in the catalog)."""
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT id, data FROM vectors WHERE id IN ({marks})", part).fetchall()
        yield np.array([r[0] for r in rows], np.int64), vec.decode_many((r[1] for r in rows), dim)


def _data_matches(index_dir: Path, manifest: Manifest) -> bool:
    """An on-disk index's lists file is there at the size written (the header's checksum covers the rest)."""
    if manifest.index_type != "ivfpq":
        return True
    try:
        return bool(manifest.ivf_data_file) and \
            os.path.getsize(index_dir / manifest.ivf_data_file) == manifest.ivf_data_bytes
    except OSError:
        return False


def _file_matches(path: Path, manifest: Manifest) -> bool:
    """The FAISS file is the one the manifest was written for (size and checksum)."""
    if manifest.faiss_crc32 is None:
        return False  # written before checksums were recorded: rebuilt once
    try:
        return os.path.getsize(path) == manifest.faiss_bytes and file_crc32(path) == manifest.faiss_crc32
    except OSError:
        return False
