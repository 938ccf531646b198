"""Persistence: SQLite catalog (source of truth), FAISS index and manifest beside it."""

from index_store.store import IndexStore, IndexReader, ImageRow

__all__ = ["IndexStore", "IndexReader", "ImageRow"]
