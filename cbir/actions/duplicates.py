"""`cbir duplicates`: groups of copies of the same photo, the best copy first; the others set aside on request."""

from __future__ import annotations

from pathlib import Path

from cbir.actions.clean import keep_chosen, open_session
from cbir.actions.progress import QUIET, Progress
from cbir.config import DUPLICATES_FOLDER
from cbir.duplicates import DuplicateReport, contact_sheet, find_duplicates, plan_extras
from cbir.moves.clean import execute_clean, moves_report
from cbir.text import quote_path
from index_store.catalog import CatalogReader
from index_store.check import require_intact


def duplicates(index_dir: Path, level: str = "near", *, scope: list[str] | None = None,
               prefer: list[str] | None = None, sheet: str | None = None, progress: Progress = QUIET) -> dict:
    """`cbir duplicates --json`: the groups, read-only."""
    with CatalogReader.open(index_dir) as reader:
        require_intact(reader)
        report = _scan(reader, level, scope, reader.roots(), prefer, sheet, progress)
    return report.as_dict()


def move_duplicates(index_dir: Path, level: str = "near", *, scope: list[str] | None = None,
                    prefer: list[str] | None = None, dest: str | None = None, apply: bool = False,
                    chosen: set[int] | None = None, sheet: str | None = None, progress: Progress = QUIET) -> dict:
    """`cbir duplicates --move-extras [--yes] --json`: every copy but each group's keeper (only the ``chosen``
    ids, when given) into a 'duplicates' folder, journaled so that `cbir undo` puts them back; a dry run
    unless ``apply``."""
    with open_session(index_dir, progress) as session:
        bases = [*session.roots, *([dest] if dest else [])]
        report = _scan(session.store, level, scope, bases, prefer, sheet, progress)
        plan = plan_extras(report, session.store, session.roots, dest)
        keep_chosen(plan, chosen)
        if not apply:
            progress.note(f"would move {len(plan.moves)} extra copies of {len(report.groups)} group(s) into "
                          f"'{DUPLICATES_FOLDER}' folders; dry run, nothing was moved; add --yes to move")
            return moves_report(plan.moves, plan, dry_run=True)
        progress.phase("moving", len(plan.moves))
        result = execute_clean(plan, session.journal, session.store, [DUPLICATES_FOLDER], dest, session.roots,
                               on_progress=progress.advance)
        progress.note(f"moved {len(result.moved)} extra copies; recorded as run {result.run_id}; "
                      f"`cbir undo {result.run_id} --yes` puts them back")
        return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)


def _scan(catalog: CatalogReader, level: str, scope: list[str] | None, bases: list[str], prefer: list[str] | None,
          sheet: str | None, progress: Progress) -> DuplicateReport:
    report = find_duplicates(catalog, level, scope or [], bases, prefer or [], progress.advance,
                             lambda n: progress.phase("checking candidates", n))
    for number, group in enumerate(report.groups, 1):
        progress.detail(f"group {number}: keeping {quote_path(group.keeper.path)}: {group.reason}")
    if sheet:
        contact_sheet(report, sheet)
        progress.note(f"contact sheet written to {quote_path(sheet)}")
    return report
