"""What the web server does to files: clean, undo and moving duplicates, through the CLI's own library code.

Every action opens the index as its single writer (cbir.session.MoveSession),
so a server action and a `cbir index` run never write at once: the later one
hears "busy". The answers are the dicts `cbir clean|undo|duplicates --json`
print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import UsageError

Progress = Callable[[int], object]


def _session(index_dir: Path):
    from cbir.session import MoveSession

    return MoveSession.open(index_dir)


def _index_quietly(store):
    def index_folders(embedder, folders: list[str], register: bool):
        from indexer.pipeline import IndexRun

        return IndexRun(store, embedder).run(folders, register=register)

    return index_folders


def _keep_chosen(plan, chosen: set[int] | None) -> None:
    """Leave out of ``plan`` the moves a person unticked (they stay where they are, as reported)."""
    if chosen is None:
        return
    plan.skipped += [(m.src, "left out by you") for m in plan.moves if m.image_id not in chosen]
    plan.moves = [m for m in plan.moves if m.image_id in chosen]


def clean(index_dir: Path, categories: list[str], *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
          apply: bool = False, chosen: set[int] | None = None, on_total: Progress | None = None,
          on_progress: Progress | None = None) -> dict:
    """`cbir clean --json`: the plan, or with ``apply`` the run (only the ``chosen`` image ids, when given)."""
    from cbir.clean import CleanRequest, execute_clean, moves_report, prepare_clean

    if not categories:
        raise UsageError("choose at least one category to clean")
    request = CleanRequest(list(categories), min_confidence=min_confidence)
    with _session(index_dir) as session:
        plan, picked = prepare_clean(session, request, _index_quietly(session.store))
        if not apply:
            return moves_report(plan.moves, plan, dry_run=True)
        _keep_chosen(plan, chosen)
        if on_total:
            on_total(len(plan.moves))
        result = execute_clean(plan, session.journal, session.store, picked, None, session.roots,
                               on_progress=on_progress)
        return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)


def undo(index_dir: Path, run_id: int | None, *, apply: bool = False, on_total: Progress | None = None,
         on_progress: Progress | None = None) -> dict:
    """`cbir undo --json`: what would go back, or with ``apply`` what went back."""
    from cbir.undo import execute_undo, pick_run, plan_undo, restores_report

    with _session(index_dir) as session:
        chosen = pick_run(session.journal, run_id)
        plan = plan_undo(session.journal, session.store, chosen, session.roots)
        if not apply:
            return restores_report(chosen, plan, dry_run=True)
        if on_total:
            on_total(len(plan))
        result = execute_undo(plan, session.journal, session.store, chosen, session.roots, on_progress=on_progress)
        return restores_report(chosen, result.restored + result.problems, dry_run=False)


def duplicates(index_dir: Path, level: str = "near", on_total: Progress | None = None,
               on_progress: Progress | None = None) -> dict:
    """`cbir duplicates --json`, read-only."""
    from cbir.duplicates import find_duplicates
    from index_store import IndexReader

    reader = IndexReader.open(index_dir)
    try:
        return find_duplicates(reader, level, [], reader.roots(), [], on_progress, on_total).as_dict()
    finally:
        reader.close()


def move_duplicates(index_dir: Path, level: str = "near", *, chosen: set[int] | None = None,
                    on_total: Progress | None = None, on_progress: Progress | None = None) -> dict:
    """`cbir duplicates --move-extras --yes --json`: every copy but each group's keeper (only the ``chosen``
    ids, when given) into a 'duplicates' folder, journaled so that undo puts them back."""
    from cbir.clean import execute_clean, moves_report
    from cbir.config import DUPLICATES_FOLDER
    from cbir.duplicates import find_duplicates, plan_extras

    with _session(index_dir) as session:
        report = find_duplicates(session.store, level, [], session.roots, [])
        plan = plan_extras(report, session.store, session.roots, None)
        _keep_chosen(plan, chosen)
        if on_total:
            on_total(len(plan.moves))
        result = execute_clean(plan, session.journal, session.store, [DUPLICATES_FOLDER], None, session.roots,
                               on_progress=on_progress)
        return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)
