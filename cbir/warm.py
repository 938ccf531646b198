"""The model and the search index of one index, kept warm between queries.

A command makes one and uses it once; the web server keeps one for its life, so that searches answer
warm. The search index is kept keyed by the catalog generation it was built from: when a writer
publishes a new generation it is loaded; while a writer is still between publishes, queries are
answered from the last published index (rows removed since are dropped from the hits) instead of
rebuilding it on every batch the writer commits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cbir.errors import mixed_models
from index_store.catalog import CatalogReader, trunk_of
from index_store.manifest import read_manifest
from index_store.publish import load_search_index
from indexer.embedder import Embedder
from indexer.engines.load import load_embedder
from indexer.model import resolve_model


@dataclass(frozen=True)
class _Published:
    generation: int
    model_id: str | None
    index: Any  # a FAISS index


class Warm:
    """The model (loaded once, one call at a time: the engines are not re-entrant) and the search index.

    ``work`` is how many pictures a query job embeds, for the engine choice: 1 for a one-off query in a
    new process, None (bulk) for a server that answers many.
    """

    def __init__(self, *, model: str | None = None, weights: str | None = None, runtime: str | None = None,
                 bulk: bool = False, work: int | None = None, embedder: Embedder | None = None) -> None:
        self._choice = (model, weights, runtime)
        self._bulk, self._work = bulk, work
        self._embedder = embedder
        self._model_lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._published: _Published | None = None

    @property
    def loaded_embedder(self) -> Embedder | None:
        return self._embedder

    def embedder(self, reader: CatalogReader) -> Embedder:
        """The model for this index (its trunk), loading it the first time; refuses a model of another trunk."""
        wanted = trunk_of(reader.model_id or "")
        with self._model_lock:
            if self._embedder is None or self._embedder.trunk_id != wanted:
                model, weights, runtime = self._choice
                self._embedder = load_embedder(weights, resolve_model(model, reader.model_ref), runtime,
                                               bulk=self._bulk, work=self._work)
            embedder = self._embedder
        check_trunk(reader, embedder)
        return embedder

    def embed_one(self, reader: CatalogReader, pixels) -> Any:
        embedder = self.embedder(reader)
        with self._model_lock:
            return embedder.embed(pixels[None]).vectors[0]

    def search_index(self, reader: CatalogReader) -> Any:
        generation, model_id = reader.generation, reader.model_id
        with self._search_lock:
            held = self._published
            if held is not None and held.model_id == model_id:
                if held.generation == generation:
                    return held.index
                manifest = read_manifest(reader.index_dir)
                if manifest is None or manifest.generation != generation:
                    return held.index  # a writer is between publishes: answer from the last published index
            index = load_search_index(reader)
            self._published = _Published(generation, model_id, index)
            return index


def check_trunk(reader: CatalogReader, embedder: Embedder) -> None:
    """Refuse to search an index with vectors of another network (a head's categories do not matter here)."""
    if trunk_of(reader.model_id or "") != embedder.trunk_id:
        raise mixed_models(reader.index_dir, f"{reader.model_ref or reader.model_id} ({reader.model_id})",
                           f"{embedder.model.ref} ({embedder.model_id})")
