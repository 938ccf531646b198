"""`cbir clean`: move the images of chosen categories into per-category folders, journaled.

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

from cbir.config import DEFAULT_MIN_CONFIDENCE, DUPLICATES_FOLDER
from cbir.errors import UsageError, mixed_models
from cbir.safe_move import MoveError, file_hash, free_name, link_free, move_file, partial_path, remove_name
from index_store.journal import UNSETTLED_STATES, Journal, MoveRow, PlannedMove
from index_store.store import IndexStore
from indexer.categorizer import OTHER
from indexer.model import class_name_problem


@dataclass
class CleanRequest:
    """What a user asked `cbir clean` for."""

    categories: list[str]
    in_dirs: list[str] = field(default_factory=list)  # default: every indexed folder
    dest: str | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    model: str | None = None
    weights: str | None = None
    runtime: str | None = None


# Indexes folders into the open store with a given embedder; ``register`` makes them indexed roots.
IndexFolders = Callable[[object, list[str], bool], object]


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
    copied_across_filesystems: int = 0

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


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def prepare_clean(session, request: CleanRequest, index_folders: IndexFolders) -> tuple[CleanPlan, list[str]]:
    """Check the model and categories, index what changed in scope, then plan; returns (plan, categories).

    The network is loaded only when something must be embedded, or to check that a model on another
    trunk is not mixed in. A model with another head on the index's trunk (a newer default model, say)
    recomputes the stored categories from the stored vectors first.
    """
    from cbir.session import recategorize
    from index_store.catalog import trunk_of
    from indexer.model import head_id, resolve_model
    from indexer.pipeline import count_pending

    store, status = session.store, session.status
    ref = resolve_model(request.model, status.model)
    chosen = check_categories(list(request.categories), ref.classes)
    index_trunk = trunk_of(store.model_id or "")
    embedder = None
    if ref.trunk_file is not None or (ref.trunk_id_hint or index_trunk) != index_trunk:
        embedder = _load_matching(request, ref, store)  # maybe another trunk: refuse before anything moves
    head = head_id(ref)
    wanted = f"{index_trunk}+{head}" if head else index_trunk
    if wanted != store.model_id:
        categorizer = ref.categorizer()
        recategorize(store, categorizer.categorize if categorizer else (lambda vectors: []), wanted, ref.ref)
    roots = session.roots
    scope = [os.path.abspath(d) for d in request.in_dirs] or roots
    outside = [d for d in scope if not any(d == r or _under(d, r) for r in roots)]
    pending = count_pending(store, scope)
    if pending:
        embedder = embedder or _load_matching(request, ref, store, pending)
        if outside:
            index_folders(embedder, outside, True)  # new folders become indexed roots
            roots = roots + outside
        inside = [d for d in scope if d not in outside]
        if inside:
            index_folders(embedder, inside, False)
    session.status.roots = roots
    plan = plan_clean(store, chosen, ref.classes, scope, roots, request.dest, request.min_confidence)
    return plan, chosen


def _load_matching(request: CleanRequest, ref, store: IndexStore, work: int | None = None):
    from index_store.catalog import trunk_of
    from indexer.engines.load import load_embedder

    embedder = load_embedder(request.weights, ref, request.runtime, work=work)
    if embedder.trunk_id != trunk_of(store.model_id or ""):
        raise mixed_models(store.index_dir, f"{store.model_ref or store.model_id}", ref.ref)
    return embedder


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
        if not any(_under(row.path, s) for s in scope):
            continue
        if category == OTHER:
            plan.no_category += 1
            continue
        root = root_of(row.path, roots)
        if root is None:
            continue  # moved outside the indexed roots by an earlier clean: never touched again
        if any(_under(row.path, folder) for folder in sorted_folders):
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
    return max((r for r in roots if _under(path, r)), key=len, default=None)


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
                journal.set_move(run_id, seq, "failed", str(exc))
                result.failed.append((move.src, str(exc)))
            else:
                journal.set_move(run_id, seq, "moved", how)
                store.relocate(move.image_id, move.dst)
                result.moved.append(move)
                result.copied_across_filesystems += how == "copy"
                if len(result.moved) % 50 == 0:
                    store.commit()
            if on_progress:
                on_progress(1)
    finally:
        store.commit()
    # Only a run that got through is marked done: an interrupted one stays 'running', and the next
    # clean or undo settles its last move by looking at the disk.
    journal.set_run_state(run_id, "done")
    return result


def recover_interrupted(journal: Journal, store: IndexStore, roots: list[str]) -> int:
    """Settle every move a killed clean or undo left half-done, by looking at the disk; returns runs settled."""
    runs = [r for r in journal.runs() if r.state in UNSETTLED_STATES]
    for run in runs:
        bases = [*roots, *([run.dest] if run.dest else [])]
        if run.state == "running":
            for move in journal.moves(run.id, ("planned",)):
                state, detail = settle(move.src, move.dst, move.hash, bases)
                journal.set_move(run.id, move.seq, state, detail)
            _follow(store, journal.moves(run.id, ("moved",)), lambda m: (m.src, m.dst))
            journal.set_run_state(run.id, "interrupted")
        else:  # undoing
            for move in journal.moves(run.id, ("restoring",)):
                state, detail = settle(move.undo_from or move.dst, move.src, move.hash, bases)
                # Put back, still where clean put it (undo can try again), or lost track of.
                journal.set_move(run.id, move.seq, _UNDO_STATE[state], detail)
            _follow(store, journal.moves(run.id, ("undone",)), lambda m: (m.undo_from or m.dst, m.src))
            left = list(journal.moves(run.id, ("moved", "undo failed")))
            journal.set_run_state(run.id, "partly undone" if left else "undone")
        store.commit()
    return len(runs)


_UNDO_STATE = {"moved": "undone", "not moved": "moved", "failed": "undo failed"}


def _follow(store: IndexStore, moves, ends: Callable[[MoveRow], tuple[str, str]]) -> None:
    """Point index rows still at a move's old path to its new one (the crash came before the index caught up)."""
    for move in moves:
        if move.image_id is None:
            continue
        old, new = ends(move)
        row = store.rows_by_ids([move.image_id]).get(move.image_id)
        if row is not None and row.path == old:
            store.relocate(move.image_id, new)


def settle(src: str, dst: str, digest: str, bases: list[str]) -> tuple[str, str]:
    """Where a move from ``src`` to ``dst`` got to when it was interrupted: ('moved'|'not moved'|'failed', why)."""
    leftover = partial_path(Path(dst))
    if os.path.lexists(leftover):
        os.unlink(leftover)  # an unverified copy of ours; the source was never removed before verification
    at_src, at_dst = os.path.lexists(src), os.path.lexists(dst)
    if at_dst and not at_src:
        return "moved", "completed before the interruption"
    if at_src and not at_dst:
        return "not moved", "interrupted before the move"
    if at_src and at_dst:
        if os.path.samefile(src, dst) or file_hash(dst) == digest:
            try:
                remove_name(src, bases)  # the new name holds the same, verified content: finish the move
            except MoveError as exc:
                return "not moved", f"{exc}; {dst} holds a second copy"
            return "moved", "finished after the interruption"
        return "not moved", f"{dst} is now another file"
    return "failed", "found at neither path after the interruption"


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
