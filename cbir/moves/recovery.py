"""Settling what a killed clean or undo left half-done, by looking at the disk.

Every move is journaled before it happens and after (index_store.journal), so a killed run names every
file that may be in flight; here each such move is decided as done or not by what is at its two paths,
and the index rows follow the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cbir.moves.safe_move import MoveError, file_hash, partial_path, remove_name
from index_store.journal import TO_PUT_BACK, UNSETTLED_STATES, Journal, MoveRow, MoveState, RunState
from index_store.writer import IndexStore


def recover_interrupted(journal: Journal, store: IndexStore, roots: list[str]) -> int:
    """Settle every move a killed clean or undo left half-done, by looking at the disk; returns runs settled."""
    runs = [r for r in journal.runs() if r.state in UNSETTLED_STATES]
    for run in runs:
        bases = [*roots, *([run.dest] if run.dest else [])]
        if run.state == RunState.RUNNING:
            for move in journal.moves(run.id, (MoveState.PLANNED,)):
                state, detail = settle(move.src, move.dst, move.hash, bases)
                journal.set_move(run.id, move.seq, state, detail)
            _follow(store, journal.moves(run.id, (MoveState.MOVED,)), lambda m: (m.src, m.dst))
            journal.set_run_state(run.id, RunState.INTERRUPTED)
        else:  # undoing
            for move in journal.moves(run.id, (MoveState.RESTORING,)):
                state, detail = settle(move.undo_from or move.dst, move.src, move.hash, bases)
                journal.set_move(run.id, move.seq, _UNDO_STATE[state], detail)
            _follow(store, journal.moves(run.id, (MoveState.UNDONE,)), lambda m: (m.undo_from or m.dst, m.src))
            left = list(journal.moves(run.id, TO_PUT_BACK))
            journal.set_run_state(run.id, RunState.PARTLY_UNDONE if left else RunState.UNDONE)
        store.commit()
    return len(runs)


# What settling a killed undo's move means for the move: put back, still where clean put it (undo can try
# again), or lost track of.
_UNDO_STATE = {MoveState.MOVED: MoveState.UNDONE, MoveState.NOT_MOVED: MoveState.MOVED,
               MoveState.FAILED: MoveState.UNDO_FAILED}


def _follow(store: IndexStore, moves, ends: Callable[[MoveRow], tuple[str, str]]) -> None:
    """Point index rows still at a move's old path to its new one (the crash came before the index caught up)."""
    for move in moves:
        if move.image_id is None:
            continue
        old, new = ends(move)
        row = store.rows_by_ids([move.image_id]).get(move.image_id)
        if row is not None and row.path == old:
            store.relocate(move.image_id, new)


def settle(src: str, dst: str, digest: str, bases: list[str]) -> tuple[MoveState, str]:
    """Where a move from ``src`` to ``dst`` got to when it was interrupted: (MOVED, NOT_MOVED or FAILED, why)."""
    leftover = partial_path(Path(dst))
    if os.path.lexists(leftover):
        os.unlink(leftover)  # an unverified copy of ours; the source was never removed before verification
    at_src, at_dst = os.path.lexists(src), os.path.lexists(dst)
    if at_dst and not at_src:
        return MoveState.MOVED, "completed before the interruption"
    if at_src and not at_dst:
        return MoveState.NOT_MOVED, "interrupted before the move"
    if at_src and at_dst:
        if os.path.samefile(src, dst) or file_hash(dst) == digest:
            try:
                remove_name(src, bases)  # the new name holds the same, verified content: finish the move
            except MoveError as exc:
                return MoveState.NOT_MOVED, f"{exc}; {dst} holds a second copy"
            return MoveState.MOVED, "finished after the interruption"
        return MoveState.NOT_MOVED, f"{dst} is now another file"
    return MoveState.FAILED, "found at neither path after the interruption"


