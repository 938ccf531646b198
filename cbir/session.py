"""Opening an index for writing: the single-writer lock first, then whatever is slow.

Taking the lock before the model loads lets a second writer hear "busy" at
once instead of after a minute of loading. Every writer (index, clean, undo,
moving duplicates) opens the index through here; cbir.moves.session adds the
journal for those that move files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from cbir.status import IndexStatus, status_of
from index_store.writer import IndexStore
from indexer.embedder import Embedder
from indexer.tags import CATEGORY_PREFIX

log = logging.getLogger(__name__)

# (model id, dimension, model reference) the store is opened under, decided once the lock is held.
Claim = tuple[str, int, "str | None"]


def open_store(index_dir: Path, claim: Callable[[IndexStatus], Claim],
               wait: Callable[[str], object] | None = None) -> IndexStore:
    """Lock the index, then open the store under the model ``claim`` decides (it may load one) from the
    index's status, read on the writer's own connection. ``wait``: wait for a busy index (being told so)
    instead of failing."""
    return IndexStore.open(index_dir, lambda reader: claim(status_of(reader, index_dir)),
                           lock=IndexStore.lock(index_dir, wait))


def adopt_head(store: IndexStore, embedder: Embedder) -> None:
    """A store opened under another head of the same trunk (``categories_from``) takes the embedder's categories,
    from the stored vectors, before anything is indexed with it."""
    if store.categories_from:
        recategorize(store, embedder.categorize, embedder.model_id, embedder.model.ref)


def recategorize(store: IndexStore, categorize, model_id: str, model_ref: str | None) -> int:
    """Give every image of the index the categories of another head on the same trunk, from stored vectors."""
    previous = store.model_ref or store.model_id
    started = time.monotonic()
    count = store.recategorize(categorize, model_id, model_ref)
    store.retag_categories(CATEGORY_PREFIX)  # the ImageNet tags do not depend on the head
    store.commit()
    log.info("recomputed the categories of %d images from their stored vectors for model %s (was %s) in %.1fs; "
             "nothing was embedded again", count, model_ref or model_id, previous, time.monotonic() - started)
    return count
