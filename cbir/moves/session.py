"""An index open for moving files: the writer lock, the journal, and interrupted runs settled first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cbir.errors import IndexEmptyError
from cbir.moves.recovery import recover_interrupted
from cbir.session import Claim, open_store
from cbir.status import IndexStatus, status_of
from index_store.journal import Journal
from index_store.writer import IndexStore


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
        def existing(status: IndexStatus) -> Claim:
            if not status.exists or not status.images:
                raise IndexEmptyError(f"index {index_dir} holds no images: run `cbir index DIR` first")
            return status.model_id or "", status.dim, None

        store = open_store(index_dir, existing)
        try:
            status = status_of(store)
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
