"""`cbir clean`: move the images of chosen categories into per-category folders, journaled, undoable.

The job: check the model and the categories asked for, give the stored images the categories of the
model's head when it changed, index what changed in scope, plan, then (when not a dry run) move.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cbir.actions.indexing import index_into
from cbir.actions.progress import QUIET, Progress
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import UsageError, mixed_models
from cbir.moves.clean import CleanPlan, check_categories, execute_clean, moves_report, plan_clean, under
from cbir.moves.session import MoveSession
from cbir.session import recategorize
from index_store.catalog import trunk_of
from index_store.writer import IndexStore
from indexer.embedder import Embedder
from indexer.engines.load import load_embedder
from indexer.model import ModelRef, head_id, resolve_model
from indexer.pipeline import count_pending


@dataclass
class CleanRequest:
    """What a person asked `cbir clean` for."""

    categories: list[str]
    in_dirs: list[str] = field(default_factory=list)  # default: every indexed folder
    dest: str | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    model: str | None = None
    weights: str | None = None
    runtime: str | None = None


def clean_plan(index_dir: Path, request: CleanRequest, progress: Progress = QUIET) -> dict:
    """`cbir clean --json` without --yes: what would move where (new or changed files are indexed first)."""
    with open_session(index_dir, progress) as session:
        plan, _ = _prepare(session, request, progress)
        return moves_report(plan.moves, plan, dry_run=True)


def clean(index_dir: Path, request: CleanRequest, *, chosen: set[int] | None = None,
          progress: Progress = QUIET) -> dict:
    """`cbir clean --yes --json`: move the planned files (only the image ids in ``chosen``, when given)."""
    with open_session(index_dir, progress) as session:
        plan, categories = _prepare(session, request, progress)
        keep_chosen(plan, chosen)
        if chosen and not plan.moves:
            raise UsageError("none of the chosen files is where the plan found it any more (was this plan applied "
                             "already?); nothing was moved")
        progress.phase("moving", len(plan.moves))
        result = execute_clean(plan, session.journal, session.store, categories, request.dest, session.roots,
                               on_progress=progress.advance)
        return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)


def open_session(index_dir: Path, progress: Progress) -> MoveSession:
    """The index open for moving files; interrupted runs it settled on the way are said as a note."""
    session = MoveSession.open(index_dir)
    if session.recovered:
        progress.note(f"settled {session.recovered} interrupted clean or undo run(s); see `cbir history`")
    return session


def keep_chosen(plan: CleanPlan, chosen: set[int] | None) -> None:
    """Leave out of ``plan`` the moves a person unticked (they stay where they are, as reported)."""
    if chosen is None:
        return
    plan.skipped += [(m.src, "left out by you") for m in plan.moves if m.image_id not in chosen]
    plan.moves = [m for m in plan.moves if m.image_id in chosen]


def _prepare(session: MoveSession, request: CleanRequest, progress: Progress) -> tuple[CleanPlan, list[str]]:
    """Check the model and categories, index what changed in scope, then plan; returns (plan, categories).

    The network is loaded only when something must be embedded, or to check that a model on another
    trunk is not mixed in. A model with another head on the index's trunk (a newer default model, say)
    recomputes the stored categories from the stored vectors first.
    """
    if not request.categories:
        raise UsageError("choose at least one category to clean")
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
    outside = [d for d in scope if not any(d == r or under(d, r) for r in roots)]
    pending = count_pending(store, scope)
    if pending:
        embedder = embedder or _load_matching(request, ref, store, pending)
        if outside:
            index_into(store, embedder, outside, register=True, progress=progress)  # new folders become roots
            roots = roots + outside
        inside = [d for d in scope if d not in outside]
        if inside:
            index_into(store, embedder, inside, register=False, progress=progress)
    session.status.roots = roots
    plan = plan_clean(store, chosen, ref.classes, scope, roots, request.dest, request.min_confidence)
    return plan, chosen


def _load_matching(request: CleanRequest, ref: ModelRef, store: IndexStore, work: int | None = None) -> Embedder:
    embedder = load_embedder(request.weights, ref, request.runtime, work=work)
    if embedder.trunk_id != trunk_of(store.model_id or ""):
        raise mixed_models(store.index_dir, f"{store.model_ref or store.model_id}", ref.ref)
    return embedder
