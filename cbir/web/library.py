"""The index as the web server's pages browse it: read fresh on every request.

Each request opens its own read-only catalog connection (SQLite's WAL gives it a consistent snapshot
while a `cbir index` run writes). Searching is cbir.actions.search's, with the server's warm model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cbir.config import DUPLICATES_FOLDER
from cbir.errors import CbirError, ImageNotFoundError, UsageError
from cbir.search import words_to_tags
from cbir.status import index_status
from cbir.tagging import taken_range
from cbir.warm import Warm
from index_store.catalog import CATALOG_FILE, CatalogReader, ImageRow
from index_store.when_table import SORTS
from indexer.tags import load_vocabulary

PAGE_SIZE_LIMIT = 500
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class Library:
    """One index, read by any number of request threads."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir

    @contextmanager
    def reader(self) -> Iterator[CatalogReader]:
        """A read-only view of the catalog as it is now; IndexEmptyError when there is no index yet."""
        with CatalogReader.open(self.index_dir) as reader:
            yield reader

    def status(self) -> dict:
        return index_status(self.index_dir).as_dict()

    def warm(self, warm: Warm) -> None:
        """Load the model and the search index now rather than on the first query (when an index exists)."""
        if not (self.index_dir / CATALOG_FILE).is_file():
            return  # no index yet: the pages say how to make one, and the model loads on the first search
        with self.reader() as reader:
            if reader.count():
                warm.embedder(reader)
                warm.search_index(reader)

    def words(self, prefix: str, limit: int = 12) -> list[str]:
        """Words a search understands that start with ``prefix``: the vocabulary's (tags, everyday words, words
        WordNet links to a tag), the categories', and the places photos were taken, shortest first."""
        wanted = prefix.strip().lower()
        if not wanted:
            return []
        categories: list[str] = []
        places: set[str] = set()
        try:
            with self.reader() as reader:
                categories = reader.category_names()
                places = {p.lower() for p in reader.place_words(wanted)}
        except CbirError:
            pass
        found = load_vocabulary().words_starting(wanted, categories) | places
        return sorted(found, key=lambda w: (len(w), w))[:limit]

    def folders(self) -> list[str]:
        """Where selected pictures can be moved: a folder per category of the index (not 'other'), and
        'duplicates'."""
        try:
            with self.reader() as reader:
                names = reader.category_names()
        except CbirError:
            names = []
        return [*[n for n in names if n != "other"], DUPLICATES_FOLDER]

    def page(self, category: str | None, tags: list[str] | None, offset: int, limit: int, sort: str = "path",
             month: str | None = None, place: str | None = None, taken: str | None = None) -> dict:
        """One page of the library in ``sort`` order ("taken": newest first, "path", "size"): ``{"total",
        "offset", "images"}``; with ``month`` ("YYYY-MM"), the page where that month starts."""
        if sort not in SORTS:
            raise UsageError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
        if month is not None and not _MONTH.fullmatch(month):
            raise UsageError(f"month must be YYYY-MM, not {month[:20]!r}")
        if not 1 <= limit <= PAGE_SIZE_LIMIT:
            raise UsageError(f"limit must be between 1 and {PAGE_SIZE_LIMIT}, got {limit}")
        if offset < 0:
            raise UsageError(f"offset must be 0 or more, got {offset}")
        with self.reader() as reader:
            words = words_to_tags(reader, tags) if tags else None
            span = taken_range(taken) if taken else None
            total, rows, offset = reader.rows_page(category or None, words, offset, limit, sort, month, place or None,
                                                   span)
            when = reader.when_of([r.id for r in rows])
            return {"total": total, "offset": offset,
                    "images": [{**_row_dict(r), **when.get(r.id, {})} for r in rows]}

    def months(self, category: str | None, tags: list[str] | None, place: str | None = None,
               taken: str | None = None) -> list[dict]:
        """Every month with images of the category, tags, place and time span, newest first:
        ``[{"month", "images"}]``."""
        with self.reader() as reader:
            words = words_to_tags(reader, tags) if tags else None
            where, params = reader.filter_clause(category or None, words, place or None,
                                                 taken_range(taken) if taken else None)
            return [{"month": m, "images": n} for m, n in reader.months(where, params)]

    def image(self, image_id: int) -> dict:
        """Everything known of one indexed image: its row, tags and whether the file is still as indexed."""
        with self.reader() as reader:
            row = self._row(reader, image_id)
            vocabulary = load_vocabulary()
            tags = [{"tag": vocabulary.name(t), "id": t, "score": round(s, 4)}
                    for t, s in vocabulary.shown(reader.tags_of([image_id])[image_id], row.category)]
            return {**_row_dict(row), **reader.when_of([image_id]).get(image_id, {}), "tags": tags,
                    "hash": row.hash, "size": row.size, "present": row.on_disk_as_indexed()}

    def row(self, image_id: int) -> ImageRow:
        with self.reader() as reader:
            return self._row(reader, image_id)

    @staticmethod
    def _row(reader: CatalogReader, image_id: int) -> ImageRow:
        row = reader.rows_by_ids([image_id]).get(image_id)
        if row is None:
            raise ImageNotFoundError(f"no indexed image has id {image_id}")
        return row


def _row_dict(row: ImageRow) -> dict:
    return {"id": row.id, "path": row.path, "category": row.category, "category_probs": row.category_probs}


