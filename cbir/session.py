"""Opening an index for writing: the single-writer lock first, then whatever is slow.

Taking the lock before the model loads lets a second writer hear "busy" at
once instead of after a minute of loading. Every writer (index, clean, undo,
and the web server's actions) opens the index through here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import IndexEmptyError
from cbir.status import IndexStatus, index_status
from index_store.journal import Journal
from index_store.store import IndexStore

log = logging.getLogger(__name__)

# (model id, dimension, model reference) the store is opened under, decided once the lock is held.
Claim = tuple[str, int, "str | None"]


def open_store(index_dir: Path, claim: Callable[[IndexStatus], Claim]) -> IndexStore:
    """Lock the index, then call ``claim`` (which may load a model) and open the store under its answer."""
    lock = IndexStore.lock(index_dir)
    try:
        model_id, dim, model_ref = claim(index_status(index_dir))
        return IndexStore.open(index_dir, model_id, dim, lock=lock, model_ref=model_ref)
    except BaseException:
        lock.release()
        raise


def recategorize(store: IndexStore, categorize, model_id: str, model_ref: str | None) -> int:
    """Give every image of the index the categories of another head on the same trunk, from stored vectors."""
    previous = store.model_ref or store.model_id
    started = time.monotonic()
    count = store.recategorize(categorize, model_id, model_ref)
    from indexer.tags import CATEGORY_PREFIX

    store.retag_categories(CATEGORY_PREFIX)  # the ImageNet tags do not depend on the head
    store.commit()
    log.info("recomputed the categories of %d images from their stored vectors for model %s (was %s) in %.1fs; "
             "nothing was embedded again", count, model_ref or model_id, previous, time.monotonic() - started)
    return count


@dataclass
class MoveSession:
    """An existing index open for writing with its journal, interrupted runs settled: what clean and undo share."""

    store: IndexStore
    journal: Journal
    status: IndexStatus
    recovered: int  # interrupted clean or undo runs settled on opening

    @property
    def roots(self) -> list[str]:
        return list(self.status.roots or [])

    @classmethod
    def open(cls, index_dir: Path) -> MoveSession:
        from cbir.clean import recover_interrupted

        def existing(status: IndexStatus) -> Claim:
            if not status.exists or not status.images:
                raise IndexEmptyError(f"index {index_dir} holds no images: run `cbir index DIR` first")
            return status.model_id or "", status.dim, None

        store = open_store(index_dir, existing)
        try:
            status = index_status(index_dir)
            journal = Journal(index_dir)
        except BaseException:
            store.close()
            raise
        try:
            recovered = recover_interrupted(journal, store, list(status.roots or []))
        except BaseException:
            journal.close()
            store.close()
            raise
        return cls(store, journal, status, recovered)

    def close(self) -> None:
        try:
            self.journal.close()
        finally:
            self.store.close()

    def __enter__(self) -> MoveSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.store.rollback()
        self.close()
