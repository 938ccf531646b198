"""The journal's states, settling an interrupted move, and safe moves, directly on real files and a real
journal (the CLI tests cover the same through whole clean and undo runs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cbir.moves.recovery import recover_interrupted, settle
from cbir.moves.safe_move import MoveError, file_hash, move_file, partial_path
from index_store.journal import TO_PUT_BACK, Journal, MoveState, PlannedMove, RunState
from index_store.writer import IndexStore, fixed_claim


def _file(path: Path, data: bytes = b"picture bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _planned(src: Path, dst: Path, image_id: int = 1) -> PlannedMove:
    return PlannedMove(image_id, str(src), str(dst), src.stat().st_size, file_hash(src), "receipt", 0.9)


def test_journal_run_and_move_states_round_trip(tmp_path):
    src = _file(tmp_path / "root" / "a.jpg")
    with Journal(tmp_path / "index") as journal:
        run = journal.start_run(["receipt"], None)
        assert journal.runs()[0].state is RunState.RUNNING
        journal.plan(run, 0, _planned(src, tmp_path / "root" / "receipt" / "a.jpg"))
        (move,) = journal.moves(run)
        assert move.state is MoveState.PLANNED and str(move.state) == "planned"
        journal.set_move(run, 0, MoveState.MOVED, "link")
        journal.set_run_state(run, RunState.DONE)
        info = journal.runs()[0]
        assert info.state is RunState.DONE and info.moved == 1 and info.finished_at is not None
        assert info.as_dict()["state"] == "done"
        assert [m.seq for m in journal.moves(run, TO_PUT_BACK)] == [0]
        journal.start_restore(run, 0, str(tmp_path / "root" / "receipt" / "a.jpg"))
        (move,) = journal.moves(run)
        assert move.state is MoveState.RESTORING and move.undo_from.endswith("receipt/a.jpg")
        journal.set_move(run, 0, MoveState.UNDONE)
        journal.set_run_state(run, RunState.UNDONE)
        assert journal.runs(RunState.UNDONE)[0].undone == 1 and not list(journal.moves(run, TO_PUT_BACK))
    with Journal(tmp_path / "index", readonly=True) as again:  # what was written is what is read back
        assert again.runs()[0].state is RunState.UNDONE


def test_settling_a_move_decides_by_what_is_on_disk(tmp_path):
    root = tmp_path / "root"
    src, dst = root / "a.jpg", root / "receipt" / "a.jpg"
    # Killed before the move: the file is where it was.
    _file(src)
    assert settle(str(src), str(dst), file_hash(src), [str(root)])[0] is MoveState.NOT_MOVED
    # Killed after it: only the new name.
    dst.parent.mkdir(parents=True)
    os.rename(src, dst)
    assert settle(str(src), str(dst), file_hash(dst), [str(root)])[0] is MoveState.MOVED
    # Killed between the link and the unlink: both names, the same content; settling finishes the move.
    os.link(dst, src)
    state, detail = settle(str(src), str(dst), file_hash(dst), [str(root)])
    assert state is MoveState.MOVED and "finished" in detail and not src.exists() and dst.is_file()
    # A half-copied temporary (across filesystems) is removed, the source kept.
    _file(src, b"other bytes")
    dst.unlink()
    _file(partial_path(dst), b"half")
    assert settle(str(src), str(dst), file_hash(src), [str(root)])[0] is MoveState.NOT_MOVED
    assert not partial_path(dst).exists() and src.is_file()
    # Another file now at the destination: never removed, the move is not done.
    _file(dst, b"someone else's")
    state, detail = settle(str(src), str(dst), file_hash(src), [str(root)])
    assert state is MoveState.NOT_MOVED and "another file" in detail and dst.read_bytes() == b"someone else's"
    # Gone from both: lost track of.
    src.unlink()
    dst.unlink()
    assert settle(str(src), str(dst), "x", [str(root)])[0] is MoveState.FAILED


def test_recovery_settles_a_killed_run_and_the_index_follows_the_file(tmp_path):
    root, index = tmp_path / "root", tmp_path / "index"
    src = _file(root / "a.jpg")
    with IndexStore.open(index, fixed_claim("m", 2)) as store:
        run = store.begin_run(str(root))
        image_id = store.add(str(src), src.stat().st_size, src.stat().st_mtime_ns, file_hash(src),
                             np.array([1.0, 0.0], np.float32), run)
        store.commit()
        with Journal(index) as journal:
            clean_run = journal.start_run(["receipt"], None)
            dst = root / "receipt" / "a.jpg"
            journal.plan(clean_run, 0, _planned(src, dst, image_id))
            dst.parent.mkdir()
            os.rename(src, dst)  # the move happened; the process was killed before it was journaled
            assert recover_interrupted(journal, store, [str(root)]) == 1
            assert journal.runs()[0].state is RunState.INTERRUPTED
            assert next(journal.moves(clean_run)).state is MoveState.MOVED
            assert store.rows_by_ids([image_id])[image_id].path == str(dst)
            assert recover_interrupted(journal, store, [str(root)]) == 0  # settled once


def test_safe_moves_never_overwrite_leave_the_folders_or_follow_links(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    src = _file(root / "a.jpg")
    assert move_file(src, root / "sorted" / "a.jpg", file_hash(src), src_bases=[str(root)],
                     dst_bases=[str(root)]) == "link"
    assert not src.exists() and (root / "sorted" / "a.jpg").is_file()
    taken = _file(root / "b.jpg", b"b")
    _file(root / "sorted" / "b.jpg", b"already here")
    with pytest.raises(MoveError, match="already exists"):
        move_file(taken, root / "sorted" / "b.jpg", src_bases=[str(root)], dst_bases=[str(root)])
    assert (root / "sorted" / "b.jpg").read_bytes() == b"already here" and taken.is_file()
    with pytest.raises(MoveError, match="outside"):
        move_file(taken, outside / "b.jpg", src_bases=[str(root)], dst_bases=[str(root)])
    outside.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(MoveError, match="symbolic link"):
        move_file(taken, root / "linked" / "b.jpg", src_bases=[str(root)], dst_bases=[str(root)])
    assert list(outside.iterdir()) == []
    (root / "link.jpg").symlink_to(taken)
    with pytest.raises(MoveError, match="symbolic link"):
        move_file(root / "link.jpg", root / "sorted" / "link.jpg", src_bases=[str(root)], dst_bases=[str(root)])
    with pytest.raises(MoveError, match="no longer exists"):
        move_file(root / "gone.jpg", root / "sorted" / "gone.jpg", src_bases=[str(root)], dst_bases=[str(root)])
