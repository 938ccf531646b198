"""Moving indexed images into per-category folders: the plan, then the moves, each journaled.

The plan is made from the categories stored at index time. Each move is
journaled before and after it happens (see index_store.journal), the file is
moved by cbir.safe_move (never overwriting, verified across filesystems,
never through a symbolic link), and the index row follows the file to its
new path without re-embedding.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cbir.config import DUPLICATES_FOLDER
from cbir.errors import UsageError
from cbir.moves.safe_move import MoveError, free_name, link_free, move_file
from index_store.journal import Journal, MoveState, PlannedMove, RunState
from index_store.writer import IndexStore
from indexer.categorizer import OTHER
from indexer.model import class_name_problem


@dataclass
class CleanPlan:
    moves: list[PlannedMove] = field(default_factory=list)
    below_confidence: int = 0
    no_category: int = 0  # judged "other": none of the model's categories; never moved
    already_sorted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def per_category(self) -> dict[str, int]:
        return dict(sorted(Counter(m.category for m in self.moves).items()))


@dataclass
class CleanResult:
    run_id: int
    moved: list[PlannedMove] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def per_category(self) -> dict[str, int]:
        return dict(sorted(Counter(m.category for m in self.moved).items()))


def moves_report(moves: list[PlannedMove], plan: CleanPlan, *, dry_run: bool, run_id: int | None = None,
                 failed=()) -> dict:
    """What `cbir clean --json` (and `duplicates --move-extras --json`, and the web API) answers."""
    left = {"no_category": plan.no_category, "below_confidence": plan.below_confidence,
            "already_sorted": plan.already_sorted,
            "skipped": [{"path": p, "reason": r} for p, r in plan.skipped]}
    return {"dry_run": dry_run, "run_id": run_id, "moves": [m.as_dict() for m in moves],
            "failed": [{"path": p, "reason": r} for p, r in failed], "left_in_place": left}


def under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def plan_clean(
    store: IndexStore,
    categories: list[str],
    classes: list[str],
    scope: list[str],
    roots: list[str],
    dest: str | None,
    min_confidence: float,
) -> CleanPlan:
    """What would move where. Only regular files inside the indexed roots, reached without a link, are planned."""
    plan = CleanPlan()
    bases = [*roots, *([dest] if dest else [])]
    sorted_folders = [os.path.join(base, c) for base in bases for c in [*classes, DUPLICATES_FOLDER]]
    taken: set[str] = set()
    folder_problems: dict[str, str | None] = {}
    for row in store.rows_with_categories([*categories, OTHER]):
        category = row.category or ""  # the query only returns rows with one of the categories
        if not any(under(row.path, s) for s in scope):
            continue
        if category == OTHER:
            plan.no_category += 1
            continue
        root = root_of(row.path, roots)
        if root is None:
            continue  # moved outside the indexed roots by an earlier clean: never touched again
        if any(under(row.path, folder) for folder in sorted_folders):
            plan.already_sorted += 1
            continue
        confidence = float((row.category_probs or {}).get(category, 0.0))
        if confidence < min_confidence:
            plan.below_confidence += 1
            continue
        plan_move(plan, row, root, dest, category, confidence, taken, folder_problems)
    return plan


def plan_move(plan: CleanPlan, row, root: str, dest: str | None, folder_name: str, confidence: float,
              taken: set[str], folder_problems: dict[str, str | None]) -> None:
    """Plan moving ``row``'s file into ``folder_name`` under ``dest`` (else its root), or say why not.

    Only a regular file inside the indexed root, reached without a link and unchanged since indexed,
    is planned; a name taken on disk or earlier in the plan gets a suffix.
    """
    if os.path.islink(row.path):
        # A link's target may live anywhere; the file it points to is indexed on its own when it is inside.
        plan.skipped.append((row.path, "symbolic link, not moved"))
        return
    if not link_free(row.path, root):
        plan.skipped.append((row.path, "reached through a symbolic link, not moved"))
        return
    try:
        stat = os.stat(row.path)
    except OSError:
        plan.skipped.append((row.path, "no longer exists"))
        return
    if stat.st_size != row.size or stat.st_mtime_ns != row.mtime_ns:
        plan.skipped.append((row.path, "changed since it was indexed"))
        return
    folder = Path(dest or root) / folder_name
    key = str(folder)
    if key not in folder_problems:
        folder_problems[key] = _folder_problem(folder_name, folder, dest or root)
    problem = folder_problems[key]
    if problem:
        plan.skipped.append((row.path, problem))
        return
    target = free_name(folder, os.path.basename(row.path), taken)
    taken.add(str(target))
    plan.moves.append(PlannedMove(row.id, row.path, str(target), row.size, row.hash, folder_name, confidence))


def root_of(path: str, roots: list[str]) -> str | None:
    """The innermost indexed root that holds ``path``."""
    return max((r for r in roots if under(path, r)), key=len, default=None)


def _folder_problem(category: str, folder: Path, base: str) -> str | None:
    problem = None if category == DUPLICATES_FOLDER else class_name_problem(category)  # reserved for this
    if problem:
        return f"category {category!r} cannot be a folder name ({problem}), not moved"
    if os.path.lexists(folder) and not link_free(str(folder), base):
        return f"category folder {folder} is a symbolic link or not a folder, not moved"
    return None


def execute_clean(
    plan: CleanPlan, journal: Journal, store: IndexStore, categories: list[str], dest: str | None,
    roots: list[str], on_progress: Callable[[int], object] | None = None,
) -> CleanResult:
    """Move the planned files, each journaled before and after; sources come only from ``roots``."""
    run_id = journal.start_run(categories, dest)
    result = CleanResult(run_id)
    targets = [dest] if dest else roots
    try:
        for seq, move in enumerate(plan.moves):
            journal.plan(run_id, seq, move)
            try:
                how = move_file(Path(move.src), Path(move.dst), move.hash, src_bases=roots, dst_bases=targets)
            except MoveError as exc:
                journal.set_move(run_id, seq, MoveState.FAILED, str(exc))
                result.failed.append((move.src, str(exc)))
            else:
                journal.set_move(run_id, seq, MoveState.MOVED, how)
                store.relocate(move.image_id, move.dst)
                result.moved.append(move)
                if len(result.moved) % 50 == 0:
                    store.commit()
            if on_progress:
                on_progress(1)
    finally:
        store.commit()
    # Only a run that got through is marked done: an interrupted one stays 'running', and the next
    # clean or undo settles its last move by looking at the disk.
    journal.set_run_state(run_id, RunState.DONE)
    return result


def check_categories(requested: list[str], classes: list[str]) -> list[str]:
    if not classes:
        raise UsageError("this index has no categories (built with a model without a category head); "
                         "re-index with --model default or a trained model")
    if OTHER in requested:
        raise UsageError("'other' means a photo of none of the categories; clean never moves those")
    if "all" in requested:
        return list(classes)
    unknown = [c for c in requested if c not in classes]
    if unknown:
        raise UsageError(f"unknown category {unknown[0]!r}; this index's model knows: {', '.join(classes)}, all")
    return list(dict.fromkeys(requested))
