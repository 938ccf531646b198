"""Acting on pictures a person selected in the web interface: move them into a folder named for a category, or
set them aside as duplicates. Journaled like clean, so `cbir undo` (or the history's Undo) puts them back."""

from __future__ import annotations

import os
from pathlib import Path

from cbir.actions.clean import open_session
from cbir.actions.progress import QUIET, Progress
from cbir.config import DUPLICATES_FOLDER
from cbir.errors import UsageError
from cbir.moves.clean import CleanPlan, execute_clean, moves_report, plan_move, root_of

MAX_SELECTED = 10_000


def move_selected(index_dir: Path, image_ids: list[int], folder: str, *, dest: str | None = None,
                  apply: bool = False, progress: Progress = QUIET) -> dict:
    """Move the images ``image_ids`` into a folder ``folder`` (a category of the index, or 'duplicates')
    inside the indexed folder each belongs to (or under ``dest``); the plan (a dry run) unless ``apply``.
    Answers like `cbir clean --json`."""
    ids = sorted(set(image_ids))
    if not ids:
        raise UsageError("select at least one picture")
    if len(ids) > MAX_SELECTED:
        raise UsageError(f"{len(ids)} pictures selected; act on at most {MAX_SELECTED} at once")
    with open_session(index_dir, progress) as session:
        folders = {*session.store.category_names(), DUPLICATES_FOLDER} - {"other"}
        if folder not in folders:
            raise UsageError(f"no folder {folder!r} to move into; choose one of {', '.join(sorted(folders))}")
        plan = CleanPlan()
        taken: set[str] = set()
        problems: dict[str, str | None] = {}
        rows = session.store.rows_by_ids(ids)
        for image_id in ids:
            row = rows.get(image_id)
            root = root_of(row.path, session.roots) if row is not None else None
            if row is None or root is None:
                plan.skipped.append((row.path if row else f"image {image_id}",
                                     "no longer indexed" if row is None else "outside the indexed folders"))
            elif os.path.dirname(row.path) == os.path.join(dest or root, folder):
                plan.already_sorted += 1
            else:
                plan_move(plan, row, root, dest, folder, (row.category_probs or {}).get(folder, 1.0), taken,
                          problems)
        if not apply:
            return moves_report(plan.moves, plan, dry_run=True)
        if not plan.moves:
            raise UsageError("none of the selected pictures can move (already there, changed or gone); nothing "
                             "was moved")
        progress.phase("moving", len(plan.moves))
        result = execute_clean(plan, session.journal, session.store, [folder], dest, session.roots,
                               on_progress=progress.advance)
        return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)
