"""Persistence: SQLite catalog (source of truth), FAISS index and manifest beside it."""

__all__ = ["ImageRow", "IndexReader", "IndexStore"]


def __getattr__(name: str):
    # Lazy, so that `cbir status` can read the catalog without importing numpy.
    if name in __all__:
        from index_store import store

        return getattr(store, name)
    raise AttributeError(name)
