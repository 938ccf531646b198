"""The index as the web server sees it: read fresh on every request, the model and search index kept warm.

Each request opens its own read-only catalog connection (SQLite's WAL gives it a
consistent snapshot while a `cbir index` run writes). The FAISS index is kept
between requests, keyed by the catalog generation it was built from: when a
writer publishes a new generation the server loads it; while a writer is still
between publishes, queries keep being answered from the last published index
(rows removed since are dropped from the hits) instead of rebuilding it on
every batch the writer commits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbir.errors import ImageNotFoundError, UsageError
from cbir.search import Hit, Searcher, check_trunk
from cbir.tagging import Found, find, words_to_tags

PAGE_SIZE_LIMIT = 500


@dataclass(frozen=True)
class _Published:
    generation: int
    model_id: str | None
    index: Any  # a FAISS index


class Library:
    """One index, read by any number of request threads; the model loads once and embeds one call at a time."""

    def __init__(self, index_dir: Path, *, model: str | None = None, weights: str | None = None,
                 runtime: str | None = None, embedder=None, max_upload_pixels: int | None = None) -> None:
        from indexer.loader import MAX_PIXELS

        self.index_dir = index_dir
        self._choice = (model, weights, runtime)
        self._embedder = embedder
        self.max_upload_pixels = max_upload_pixels or MAX_PIXELS
        self._model_lock = threading.Lock()  # one model call at a time: the engines are not re-entrant
        self._search_lock = threading.Lock()
        self._published: _Published | None = None

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A read-only view of the catalog as it is now; IndexEmptyError when there is no index yet."""
        from index_store import IndexReader

        reader = IndexReader.open(self.index_dir)
        try:
            yield reader
        finally:
            reader.close()

    def status(self) -> dict:
        from cbir.status import index_status

        return index_status(self.index_dir).as_dict()

    def warm(self) -> None:
        """Load the model and the search index now rather than on the first query (when an index exists)."""
        from index_store.catalog import CATALOG_FILE

        if not (self.index_dir / CATALOG_FILE).is_file():
            return  # no index yet: the pages say how to make one, and the model loads on the first search
        with self.reader() as reader:
            if reader.count():
                self._model(reader)
                self._search_index(reader)

    @property
    def loaded_embedder(self):
        """The model, once loaded (None before); another Library can share it."""
        return self._embedder

    @property
    def runtime(self) -> str | None:
        return self._embedder.runtime if self._embedder is not None else None

    def _model(self, reader):
        from index_store.catalog import trunk_of
        from indexer.engines.load import load_embedder
        from indexer.model import resolve_model

        wanted = trunk_of(reader.model_id or "")
        with self._model_lock:
            if self._embedder is None or self._embedder.trunk_id != wanted:
                model, weights, runtime = self._choice
                # One picture at a time: measuring the engines is left to a job that pays for it.
                self._embedder = load_embedder(weights, resolve_model(model, reader.model_ref), runtime, work=1)
            embedder = self._embedder
        check_trunk(reader, embedder)
        return embedder

    def _search_index(self, reader):
        from index_store.manifest import read_manifest

        generation, model_id = reader.generation, reader.model_id
        with self._search_lock:
            held = self._published
            if held is not None and held.model_id == model_id:
                if held.generation == generation:
                    return held.index
                manifest = read_manifest(self.index_dir)
                if manifest is None or manifest.generation != generation:
                    return held.index  # a writer is between publishes: answer from the last published index
            index = reader.load_faiss()
            self._published = _Published(generation, model_id, index)
            return index

    def _searcher(self, reader) -> Searcher:
        return Searcher(reader, self._search_index(reader))

    def _allowed(self, reader, tags: list[str] | None) -> set[int] | None:
        return reader.ids_tagged(words_to_tags(reader, tags)) if tags else None

    def query_upload(self, data: bytes, k: int = 10, *, exclude_self: bool = False,
                     tags: list[str] | None = None) -> list[Hit]:
        """The k images most like an uploaded picture; a copy of an indexed file counts as that file."""
        from index_store.hashing import content_hash
        from indexer.loader import decode

        _check_k(k)
        pixels = decode(data, max_pixels=self.max_upload_pixels)  # checked even when the bytes are indexed
        with self.reader() as reader:
            reader.require_images()
            allowed = self._allowed(reader, tags)
            same = reader.rows_by_hash(content_hash(data))
            if same:  # these very bytes are indexed: their stored vector is the model's answer
                vector = reader.vector(same[0].id)
            else:
                embedder = self._model(reader)
                with self._model_lock:
                    vector = embedder.embed(pixels[None]).vectors[0]
            return self._searcher(reader).search(vector, k, same[0] if same else None, exclude_self, allowed)

    def query_id(self, image_id: int, k: int = 10, *, exclude_self: bool = False,
                 tags: list[str] | None = None) -> list[Hit]:
        """More like an indexed image, from its stored vector (nothing is embedded)."""
        _check_k(k)
        with self.reader() as reader:
            row = self._row(reader, image_id)
            allowed = self._allowed(reader, tags)
            return self._searcher(reader).search(reader.vector(image_id), k, row, exclude_self, allowed)

    def find(self, words: list[str], k: int | None = 10) -> list[Found]:
        return find(self.index_dir, words, k)

    def page(self, category: str | None, tags: list[str] | None, offset: int, limit: int) -> dict:
        """One page of the library in path order: ``{"total", "offset", "images"}``."""
        if not 1 <= limit <= PAGE_SIZE_LIMIT:
            raise UsageError(f"limit must be between 1 and {PAGE_SIZE_LIMIT}, got {limit}")
        if offset < 0:
            raise UsageError(f"offset must be 0 or more, got {offset}")
        with self.reader() as reader:
            words = words_to_tags(reader, tags) if tags else None
            total, rows = reader.rows_page(category or None, words, offset, limit)
            return {"total": total, "offset": offset, "images": [_row_dict(r) for r in rows]}

    def image(self, image_id: int) -> dict:
        """Everything known of one indexed image: its row, tags and whether the file is still as indexed."""
        from indexer.tags import load_vocabulary

        with self.reader() as reader:
            row = self._row(reader, image_id)
            vocabulary = load_vocabulary()
            tags = [{"tag": vocabulary.name(t), "id": t, "score": round(s, 4)}
                    for t, s in reader.tags_of([image_id])[image_id]]
            return {**_row_dict(row), "tags": tags, "hash": row.hash, "size": row.size,
                    "present": _unchanged(row)}

    def row(self, image_id: int):
        with self.reader() as reader:
            return self._row(reader, image_id)

    def roots(self) -> list[str]:
        with self.reader() as reader:
            return reader.roots()

    def categories(self) -> dict[str, int]:
        with self.reader() as reader:
            return reader.category_counts()

    @staticmethod
    def _row(reader, image_id: int):
        row = reader.rows_by_ids([image_id]).get(image_id)
        if row is None:
            raise ImageNotFoundError(f"no indexed image has id {image_id}")
        return row


def _check_k(k: int) -> None:
    if not 1 <= k <= PAGE_SIZE_LIMIT:
        raise UsageError(f"k must be between 1 and {PAGE_SIZE_LIMIT}, got {k}")


def _row_dict(row) -> dict:
    return {"id": row.id, "path": row.path, "category": row.category, "category_probs": row.category_probs}


def _unchanged(row) -> bool:
    try:
        stat = os.stat(row.path)
    except OSError:
        return False
    return stat.st_size == row.size and stat.st_mtime_ns == row.mtime_ns
