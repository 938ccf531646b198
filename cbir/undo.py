"""`cbir undo`: put the files of a clean run back where they were.

A file is looked for at its destination, then where the index last saw it,
then (by size and content hash) anywhere in its destination folder, so a file
renamed after the clean still goes back. Nothing is ever overwritten: if its
original path is taken now, the file stays where it is and the reason is
reported. A run with such leftovers can be undone again later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cbir.errors import UsageError
from cbir.safe_move import MoveError, file_hash, move_file
from index_store.journal import UNDOABLE_STATES, Journal, MoveRow
from index_store.store import IndexStore


@dataclass
class Restore:
    move: MoveRow
    current: str | None  # where the file is now; None when it cannot be found
    problem: str | None = None

    def as_dict(self) -> dict:
        return {"path": self.move.src, "from": self.current, "problem": self.problem}


@dataclass
class UndoResult:
    run_id: int
    restored: list[Restore] = field(default_factory=list)
    problems: list[Restore] = field(default_factory=list)


def pick_run(journal: Journal, run_id: int | None) -> int:
    runs = journal.runs()
    if run_id is None:
        candidates = [r for r in runs if r.state in UNDOABLE_STATES and r.moved]
        if not candidates:
            raise UsageError("nothing to undo: no clean run has files left to put back (see `cbir history`)")
        return candidates[-1].id
    run = next((r for r in runs if r.id == run_id), None)
    if run is None:
        raise UsageError(f"no clean run {run_id} (see `cbir history`)")
    if run.state not in UNDOABLE_STATES or not run.moved:
        raise UsageError(f"clean run {run_id} is {run.state} and has nothing left to put back")
    return run_id


def plan_undo(journal: Journal, store: IndexStore, run_id: int) -> list[Restore]:
    moves = list(journal.moves(run_id, ("moved", "undo failed")))
    claimed: set[str] = set()
    plan = []
    for move in reversed(moves):
        current = _locate(move, store, claimed)
        problem = None
        if current is None:
            problem = f"not found at {move.dst} nor elsewhere in {os.path.dirname(move.dst)}"
        else:
            claimed.add(current)
            if os.path.lexists(move.src):
                problem = f"{move.src} is taken by another file now; left at {current}"
        plan.append(Restore(move, current, problem))
    return plan


def execute_undo(plan: list[Restore], journal: Journal, store: IndexStore, run_id: int,
                 on_progress: Callable[[int], None] | None = None) -> UndoResult:
    result = UndoResult(run_id)
    try:
        for item in plan:
            move = item.move
            if item.problem is None:
                try:
                    move_file(Path(item.current), Path(move.src), move.hash)
                except MoveError as exc:
                    item.problem = str(exc)
            if item.problem is None:
                journal.set_move(run_id, move.seq, "undone")
                if move.image_id is not None and move.image_id in store.rows_by_ids([move.image_id]):
                    store.relocate(move.image_id, move.src)
                result.restored.append(item)
            else:
                journal.set_move(run_id, move.seq, "undo failed", item.problem)
                result.problems.append(item)
            if on_progress:
                on_progress(1)
    finally:
        store.commit()
        left = list(journal.moves(run_id, ("moved", "undo failed")))
        journal.set_run_state(run_id, "partly undone" if left else "undone")
    return result


def _locate(move: MoveRow, store: IndexStore, claimed: set[str]) -> str | None:
    def matches(path: str) -> bool:
        try:
            return (path not in claimed and os.path.isfile(path) and not os.path.islink(path)
                    and os.path.getsize(path) == move.size and file_hash(Path(path)) == move.hash)
        except OSError:
            return False

    if matches(move.dst):
        return move.dst
    if move.image_id is not None:
        row = store.rows_by_ids([move.image_id]).get(move.image_id)
        if row is not None and matches(row.path):
            return row.path
    folder = os.path.dirname(move.dst)
    if os.path.isdir(folder):
        for dirpath, _, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if matches(path):
                    return path
    return None
