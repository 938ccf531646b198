"""`cbir undo`: put the files of a clean run back where they were.

A file is looked for at its destination, then where the index last saw it,
then (by size and content hash) anywhere in its destination folder, so a file
renamed after the clean still goes back. Nothing is ever overwritten: if its
original path is taken now, the file stays where it is and the reason is
reported. A run with such leftovers can be undone again later.

Undo trusts the journal no more than clean trusts the index: a file is only
taken from inside the indexed folders or the run's ``--dest``, and only put
back inside the indexed folders, never through a symbolic link.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cbir.errors import UsageError
from cbir.moves.safe_move import MoveError, base_of, file_hash, move_file
from index_store.journal import (
    TO_PUT_BACK,
    UNDOABLE_STATES,
    UNSETTLED_STATES,
    Journal,
    MoveRow,
    MoveState,
    RunInfo,
    RunState,
)
from index_store.lock import WriterLock
from index_store.writer import IndexStore


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


def restores_report(run_id: int, items: list[Restore], *, dry_run: bool) -> dict:
    """What `cbir undo --json` (and the web API) answers."""
    return {"run_id": run_id, "dry_run": dry_run, "files": [i.as_dict() for i in items]}


def clean_history(index_dir: Path) -> list[RunInfo]:
    """Every clean run, oldest first; a run nobody is running any more shows as 'interrupted'."""

    runs: list[RunInfo] = []
    if Journal.exists(index_dir):
        journal = Journal(index_dir, readonly=True)
        try:
            runs = journal.runs()
        finally:
            journal.close()
    if any(r.state in UNSETTLED_STATES for r in runs) and not WriterLock.held(index_dir):
        for r in runs:  # it was killed, and is settled by the next clean or undo
            r.state = RunState.INTERRUPTED if r.state in UNSETTLED_STATES else r.state
    return runs


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


def run_bases(journal: Journal, run_id: int, roots: list[str]) -> list[str]:
    """Where a run's files may be now: the indexed folders, and the run's --dest."""
    dest = next((r.dest for r in journal.runs() if r.id == run_id), None)
    return [*roots, *([dest] if dest else [])]


def plan_undo(journal: Journal, store: IndexStore, run_id: int, roots: list[str]) -> list[Restore]:
    moves = list(journal.moves(run_id, TO_PUT_BACK))
    bases = run_bases(journal, run_id, roots)
    claimed: set[str] = set()
    plan = []
    for move in reversed(moves):
        current = _locate(move, store, claimed, bases)
        problem = None
        if base_of(_existing_ancestor(os.path.dirname(move.src)), roots) is None:
            problem = (f"{move.src} is not inside an indexed folder (or is reached through a symbolic link); "
                       "cbir puts files back only inside the indexed folders")
        elif current is None:
            problem = f"not found at {move.dst} nor elsewhere in {os.path.dirname(move.dst)}"
        else:
            claimed.add(current)
            if os.path.lexists(move.src):
                problem = f"{move.src} is taken by another file now; left at {current}"
        plan.append(Restore(move, current, problem))
    return plan


def execute_undo(plan: list[Restore], journal: Journal, store: IndexStore, run_id: int, roots: list[str],
                 on_progress: Callable[[int], object] | None = None) -> UndoResult:
    """Put the planned files back, each journaled before ('restoring') and after ('undone')."""
    result = UndoResult(run_id)
    bases = run_bases(journal, run_id, roots)
    journal.set_run_state(run_id, RunState.UNDOING)
    try:
        for item in plan:
            move = item.move
            if item.problem is None and item.current is not None:
                journal.start_restore(run_id, move.seq, item.current)
                try:
                    move_file(Path(item.current), Path(move.src), move.hash, src_bases=bases, dst_bases=roots)
                except MoveError as exc:
                    item.problem = str(exc)
            if item.problem is None:
                journal.set_move(run_id, move.seq, MoveState.UNDONE)
                if move.image_id is not None and move.image_id in store.rows_by_ids([move.image_id]):
                    store.relocate(move.image_id, move.src)
                result.restored.append(item)
            else:
                journal.set_move(run_id, move.seq, MoveState.UNDO_FAILED, item.problem)
                result.problems.append(item)
            if on_progress:
                on_progress(1)
    finally:
        store.commit()
    # An interrupted undo stays 'undoing'; the next clean or undo settles it by looking at the disk.
    left = list(journal.moves(run_id, TO_PUT_BACK))
    journal.set_run_state(run_id, RunState.PARTLY_UNDONE if left else RunState.UNDONE)
    return result


def _existing_ancestor(folder: str) -> str:
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def _locate(move: MoveRow, store: IndexStore, claimed: set[str], bases: list[str]) -> str | None:
    def matches(path: str) -> bool:
        try:
            return (path not in claimed and os.path.isfile(path) and not os.path.islink(path)
                    and base_of(path, bases) is not None
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
