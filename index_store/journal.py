"""The move journal beside the index: every clean run and every file it moved.

Each move is written as 'planned' (and committed) before the file is
touched, and as 'moved' right after, so after a crash at any point the
journal names every file that may be in flight; recovery looks at the disk
to settle each one. Undo flips moves to 'undone' one by one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

JOURNAL_FILE = "journal.sqlite"
JOURNAL_VERSION = 1

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
    state      TEXT NOT NULL,           -- planned, moved, failed, not moved, undone, undo failed
    detail     TEXT,
    PRIMARY KEY (run_id, seq)
);
"""

UNDOABLE_STATES = ("done", "interrupted", "partly undone")


@dataclass
class RunInfo:
    id: int
    started_at: float
    finished_at: float | None
    state: str
    categories: list[str]
    dest: str | None
    moved: int
    undone: int
    failed: int

    def as_dict(self) -> dict:
        return {"id": self.id, "started_at": self.started_at, "finished_at": self.finished_at,
                "state": self.state, "categories": self.categories, "dest": self.dest, "moved": self.moved,
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
        return {"path": self.src, "destination": self.dst, "category": self.category,
                "confidence": round(self.confidence, 4)}


@dataclass
class MoveRow(PlannedMove):
    """A journaled move, with its place in its run and how far it got."""

    run_id: int
    seq: int
    state: str
    detail: str | None


class Journal:
    def __init__(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        self.path = index_dir / JOURNAL_FILE
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # a 'moved' row must survive a power cut
        self.conn.executescript(_DDL)
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(JOURNAL_VERSION),))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------
    def start_run(self, categories: list[str], dest: str | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (started_at, state, categories, dest) VALUES (?, 'running', ?, ?)",
            (time.time(), json.dumps(categories), dest),
        )
        return int(cur.lastrowid)

    def set_run_state(self, run_id: int, state: str) -> None:
        column = "undone_at" if state in ("undone", "partly undone") else "finished_at"
        self.conn.execute(f"UPDATE runs SET state = ?, {column} = ? WHERE id = ?", (state, time.time(), run_id))

    def runs(self, state: str | None = None) -> list[RunInfo]:
        rows = self.conn.execute(
            "SELECT r.id, r.started_at, r.finished_at, r.state, r.categories, r.dest, "
            "SUM(m.state IN ('moved', 'undo failed')), SUM(m.state = 'undone'), SUM(m.state = 'failed') "
            "FROM runs r LEFT JOIN moves m ON m.run_id = r.id "
            + ("WHERE r.state = ? " if state else "")
            + "GROUP BY r.id ORDER BY r.id",
            (state,) if state else (),
        ).fetchall()
        return [RunInfo(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], int(r[6] or 0), int(r[7] or 0),
                        int(r[8] or 0)) for r in rows]

    def run(self, run_id: int) -> RunInfo | None:
        return next((r for r in self.runs() if r.id == run_id), None)

    # -- moves --------------------------------------------------------------
    def plan(self, run_id: int, seq: int, move: PlannedMove) -> None:
        self.conn.execute(
            "INSERT INTO moves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', NULL)",
            (run_id, seq, move.image_id, move.src, move.dst, move.size, move.hash, move.category, move.confidence),
        )

    def set_move(self, run_id: int, seq: int, state: str, detail: str | None = None, dst: str | None = None) -> None:
        if dst is None:
            self.conn.execute("UPDATE moves SET state = ?, detail = ? WHERE run_id = ? AND seq = ?",
                              (state, detail, run_id, seq))
        else:
            self.conn.execute("UPDATE moves SET state = ?, detail = ?, dst = ? WHERE run_id = ? AND seq = ?",
                              (state, detail, dst, run_id, seq))

    def moves(self, run_id: int, states: tuple[str, ...] | None = None) -> Iterator[MoveRow]:
        sql = "SELECT * FROM moves WHERE run_id = ?"
        params: list = [run_id]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params += list(states)
        for run_id, seq, *move, state, detail in self.conn.execute(sql + " ORDER BY seq", params).fetchall():
            yield MoveRow(*move, run_id=run_id, seq=seq, state=state, detail=detail)
