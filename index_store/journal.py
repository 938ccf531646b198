"""The move journal beside the index: every clean run and every file it moved.

Each move is written as 'planned' (and committed) before the file is
touched, and as 'moved' right after, so after a crash at any point the
journal names every file that may be in flight; recovery looks at the disk
to settle each one. Undo does the same the other way: a move is written
'restoring' (with where the file is taken from) before it is put back, and
'undone' right after.

The journal cannot be rebuilt from anything else: a damaged one is reported
by name with what it holds (the undo history), never silently replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cbir.errors import CbirError, DamagedFileError
from index_store.db import PATH_PARAM, connect, fs, guarded

JOURNAL_FILE = "journal.sqlite"
JOURNAL_VERSION = 2  # 2: moves.undo_from, run state 'undoing'

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  REAL NOT NULL,
    finished_at REAL,
    state       TEXT NOT NULL,          -- running, done, interrupted, undone, partly undone
    categories  TEXT NOT NULL,          -- JSON list
    dest        TEXT,
    undone_at   REAL
);
CREATE TABLE IF NOT EXISTS moves (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    seq        INTEGER NOT NULL,
    image_id   INTEGER,
    src        TEXT NOT NULL,
    dst        TEXT NOT NULL,
    size       INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    category   TEXT NOT NULL,
    confidence REAL NOT NULL,
    state      TEXT NOT NULL,           -- planned, moved, failed, not moved, restoring, undone, undo failed
    detail     TEXT,
    undo_from  TEXT,                    -- where undo takes the file from (state 'restoring')
    PRIMARY KEY (run_id, seq)
);
"""

class _State(str, Enum):
    """A state stored and shown as its value ("partly undone", not "RunState.PARTLY_UNDONE")."""

    def __str__(self) -> str:
        return self.value


class RunState(_State):
    """Where a clean run is: moving (``RUNNING``), through (``DONE``), killed and settled (``INTERRUPTED``),
    being put back (``UNDOING``), put back whole (``UNDONE``) or in part (``PARTLY_UNDONE``)."""

    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    UNDOING = "undoing"
    UNDONE = "undone"
    PARTLY_UNDONE = "partly undone"


class MoveState(_State):
    """Where one journaled move is. Clean writes ``PLANNED`` before touching the file, then ``MOVED`` or
    ``FAILED``; settling a killed run decides ``MOVED`` or ``NOT_MOVED`` from the disk. Undo writes
    ``RESTORING`` before moving it back, then ``UNDONE`` or ``UNDO_FAILED``."""

    PLANNED = "planned"
    MOVED = "moved"
    FAILED = "failed"
    NOT_MOVED = "not moved"
    RESTORING = "restoring"
    UNDONE = "undone"
    UNDO_FAILED = "undo failed"


UNDOABLE_STATES = (RunState.DONE, RunState.INTERRUPTED, RunState.PARTLY_UNDONE)
# Runs a killed process can leave behind; the next clean or undo settles them.
UNSETTLED_STATES = (RunState.RUNNING, RunState.UNDOING)
# Moves whose file is (or may be) where clean put it: what undo puts back.
TO_PUT_BACK = (MoveState.MOVED, MoveState.UNDO_FAILED)


@dataclass
class RunInfo:
    id: int
    started_at: float
    finished_at: float | None
    state: RunState
    categories: list[str]
    dest: str | None
    moved: int
    undone: int
    failed: int

    def as_dict(self) -> dict:
        return {"id": self.id, "started_at": self.started_at, "finished_at": self.finished_at,
                "state": self.state.value, "categories": self.categories, "dest": self.dest, "moved": self.moved,
                "undone": self.undone, "failed": self.failed}


@dataclass
class PlannedMove:
    """One file a clean run moves: what it is, where from, where to, and why."""

    image_id: int
    src: str
    dst: str
    size: int
    hash: str
    category: str
    confidence: float

    def as_dict(self) -> dict:
        return {"path": self.src, "destination": self.dst, "id": self.image_id, "category": self.category,
                "confidence": round(self.confidence, 4)}


@dataclass
class MoveRow(PlannedMove):
    """A journaled move, with its place in its run and how far it got."""

    run_id: int
    seq: int
    state: MoveState
    detail: str | None
    undo_from: str | None = None


def _damaged(message: str) -> CbirError:
    return DamagedFileError(
        f"the clean journal {message}. It holds the undo history of earlier clean runs, which cannot be read "
        "now; the files those runs moved stay where they are. Move the journal aside (for example add "
        "'.damaged' to its name) and cbir starts a new one")


class Journal:
    def __init__(self, index_dir: Path, readonly: bool = False) -> None:
        """Open (or, for writing, create) the journal of the index at ``index_dir``."""
        self.path = index_dir / JOURNAL_FILE
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        with self._guard("opening"):
            if not readonly:
                index_dir.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path, readonly=readonly)
            try:
                self._prepare()
            except BaseException:
                self.conn.close()
                raise

    def _prepare(self) -> None:
        assert self.conn is not None
        version = 0
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        if has_meta:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            version = int(row[0]) if row else 0
        if version > JOURNAL_VERSION:
            raise DamagedFileError(f"the clean journal {self.path} was written by a newer cbir (version "
                                   f"{version}); upgrade cbir to read it")
        if self.readonly:
            self._has_undo_from = version >= 2 or not has_meta
            return
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # a 'moved' row must survive a power cut
        self.conn.executescript(_DDL)
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(moves)")}
        if "undo_from" not in columns:
            self.conn.execute("ALTER TABLE moves ADD COLUMN undo_from TEXT")
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(JOURNAL_VERSION),))
        self._has_undo_from = True

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        with guarded(self.path, f"{doing} the clean journal", _damaged):
            yield

    def close(self) -> None:
        if self.conn is not None:
            if not self.readonly:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # readable from read-only media
            self.conn.close()
            self.conn = None

    def _execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        assert self.conn is not None
        with self._guard("writing"):
            return self.conn.execute(sql, params)

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        assert self.conn is not None
        with self._guard("reading"):
            return self.conn.execute(sql, params).fetchall()

    @staticmethod
    def exists(index_dir: Path) -> bool:
        return os.path.isfile(index_dir / JOURNAL_FILE)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------
    def start_run(self, categories: list[str], dest: str | None) -> int:
        cur = self._execute(
            f"INSERT INTO runs (started_at, state, categories, dest) VALUES (?, 'running', ?, {PATH_PARAM})",
            (time.time(), json.dumps(categories), fs(dest) if dest is not None else None),
        )
        return int(cur.lastrowid or 0)

    def set_run_state(self, run_id: int, state: RunState) -> None:
        column = {RunState.UNDONE: "undone_at", RunState.PARTLY_UNDONE: "undone_at", RunState.UNDOING: None}.get(
            state, "finished_at")
        if column is None:
            self._execute("UPDATE runs SET state = ? WHERE id = ?", (state.value, run_id))
        else:
            self._execute(f"UPDATE runs SET state = ?, {column} = ? WHERE id = ?", (state.value, time.time(), run_id))

    def runs(self, state: RunState | None = None) -> list[RunInfo]:
        rows = self._query(
            "SELECT r.id, r.started_at, r.finished_at, r.state, r.categories, r.dest, "
            "SUM(m.state IN ('moved', 'restoring', 'undo failed')), SUM(m.state = 'undone'), "
            "SUM(m.state = 'failed') "
            "FROM runs r LEFT JOIN moves m ON m.run_id = r.id "
            + ("WHERE r.state = ? " if state else "")
            + "GROUP BY r.id ORDER BY r.id",
            (state.value,) if state else (),
        )
        return [RunInfo(r[0], r[1], r[2], RunState(r[3]), json.loads(r[4]), r[5], int(r[6] or 0), int(r[7] or 0),
                        int(r[8] or 0)) for r in rows]

    # -- moves --------------------------------------------------------------
    def plan(self, run_id: int, seq: int, move: PlannedMove) -> None:
        self._execute(
            f"INSERT INTO moves VALUES (?, ?, ?, {PATH_PARAM}, {PATH_PARAM}, ?, ?, ?, ?, 'planned', NULL, NULL)",
            (run_id, seq, move.image_id, fs(move.src), fs(move.dst), move.size, move.hash, move.category,
             move.confidence),
        )

    def set_move(self, run_id: int, seq: int, state: MoveState, detail: str | None = None) -> None:
        self._execute("UPDATE moves SET state = ?, detail = ? WHERE run_id = ? AND seq = ?",
                      (state.value, detail, run_id, seq))

    def start_restore(self, run_id: int, seq: int, current: str) -> None:
        """Undo is about to move the file back from ``current``."""
        self._execute(f"UPDATE moves SET state = 'restoring', undo_from = {PATH_PARAM} WHERE run_id = ? AND seq = ?",
                      (fs(current), run_id, seq))

    def moves(self, run_id: int, states: tuple[MoveState, ...] | None = None) -> Iterator[MoveRow]:
        columns = "run_id, seq, image_id, src, dst, size, hash, category, confidence, state, detail"
        columns += ", undo_from" if self._has_undo_from else ", NULL"
        sql = f"SELECT {columns} FROM moves WHERE run_id = ?"
        params: list = [run_id]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params += [state.value for state in states]
        rows = self._query(sql + " ORDER BY seq", params)
        for run_id, seq, image_id, src, dst, size, digest, category, confidence, state, detail, undo_from in rows:
            yield MoveRow(image_id, src, dst, size, digest, category, confidence, run_id=run_id, seq=seq,
                          state=MoveState(state), detail=detail, undo_from=undo_from)
