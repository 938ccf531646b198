"""`cbir duplicates`: groups of copies of the same photo, the best copy first; the others set aside on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cbir.actions.clean import open_session
from cbir.actions.progress import QUIET, Progress
from cbir.config import DUPLICATES_FOLDER
from cbir.duplicates import DuplicateReport, Group, contact_sheet, find_duplicates, plan_copies, plan_extras
from cbir.errors import UsageError
from cbir.moves.clean import CleanPlan, execute_clean, moves_report
from cbir.text import quote_path
from index_store.catalog import CatalogReader
from index_store.check import require_intact


def duplicates(index_dir: Path, level: str = "near", *, scope: list[str] | None = None,
               prefer: list[str] | None = None, sheet: str | None = None, progress: Progress = QUIET,
               on_group: Callable[[dict], object] | None = None) -> dict:
    """`cbir duplicates --json`: the groups, read-only. ``on_group`` hears each group (as in the answer's
    ``groups``) as soon as it is final, long before the scan ends on a large library."""
    with CatalogReader.open(index_dir) as reader:
        require_intact(reader)
        report = _scan(reader, level, scope, reader.roots(), prefer, sheet, progress, on_group)
    return report.as_dict()


def move_duplicates(index_dir: Path, level: str = "near", *, scope: list[str] | None = None,
                    prefer: list[str] | None = None, dest: str | None = None, apply: bool = False,
                    sheet: str | None = None, progress: Progress = QUIET) -> dict:
    """`cbir duplicates --move-extras [--yes] --json`: every copy but each group's keeper into a 'duplicates'
    folder, journaled so that `cbir undo` puts them back; a dry run (the plan) unless ``apply``."""
    with open_session(index_dir, progress) as session:
        bases = [*session.roots, *([dest] if dest else [])]
        report = _scan(session.store, level, scope, bases, prefer, sheet, progress)
        plan = plan_extras(report, session.store, session.roots, dest)
        return _carry_out(session, plan, len(report.groups), dest, apply, progress)


def move_chosen_copies(index_dir: Path, groups: list[dict], chosen: dict[int, int | None], *,
                       dest: str | None = None, apply: bool = True, progress: Progress = QUIET) -> dict:
    """Move the copies of the groups a person chose, after looking at them: ``groups`` as a scan answered
    them (``duplicates``), ``chosen`` maps a group's number to the id of the copy to keep (None: the one the
    scan suggested). Every other member of a chosen group goes into a 'duplicates' folder, journaled; a
    file changed since it was indexed stays where it is. Nothing is rescanned."""
    copies = chosen_copies(groups, chosen)
    with open_session(index_dir, progress) as session:
        plan = plan_copies(copies, session.store, session.roots, dest)
        return _carry_out(session, plan, len(chosen), dest, apply, progress)


def chosen_copies(groups: list[dict], chosen: dict[int, int | None]) -> list[tuple[int, float]]:
    """(id, similarity) of the members that move when the groups numbered in ``chosen`` keep the member
    named there; UsageError for a group the scan did not find or a keeper not in its group."""
    by_number = {g["group"]: g for g in groups}
    copies: list[tuple[int, float]] = []
    for number, keep in sorted(chosen.items()):
        group = by_number.get(number)
        if group is None:
            raise UsageError(f"there is no group {number} in this scan (it found {len(groups)} so far)")
        ids = [m["id"] for m in group["members"]]
        keeper = ids[0] if keep is None else keep
        if keeper not in ids:
            raise UsageError(f"image {keeper} is not in group {number}; keep one of {', '.join(map(str, ids))}")
        copies += [(m["id"], m["similarity"]) for m in group["members"] if m["id"] != keeper]
    return copies


def _carry_out(session, plan: CleanPlan, groups: int, dest: str | None, apply: bool, progress: Progress) -> dict:
    if not apply:
        progress.note(f"would move {len(plan.moves)} extra copies of {groups} group(s) into "
                      f"'{DUPLICATES_FOLDER}' folders; dry run, nothing was moved; add --yes to move")
        return moves_report(plan.moves, plan, dry_run=True)
    progress.phase("moving", len(plan.moves))
    result = execute_clean(plan, session.journal, session.store, [DUPLICATES_FOLDER], dest, session.roots,
                           on_progress=progress.advance)
    progress.note(f"moved {len(result.moved)} extra copies; recorded as run {result.run_id}; "
                  f"`cbir undo {result.run_id} --yes` puts them back")
    return moves_report(result.moved, plan, dry_run=False, run_id=result.run_id, failed=result.failed)


def _scan(catalog: CatalogReader, level: str, scope: list[str] | None, bases: list[str], prefer: list[str] | None,
          sheet: str | None, progress: Progress, on_group: Callable[[dict], object] | None = None) -> DuplicateReport:
    found: list[Group] = []

    def heard(group: Group) -> None:
        found.append(group)
        progress.detail(f"group {len(found)}: keeping {quote_path(group.keeper.path)}: {group.reason}")
        if on_group:
            on_group(group.as_dict(len(found)))

    progress.phase("finding candidate pairs", None)
    report = find_duplicates(catalog, level, scope or [], bases, prefer or [], progress.advance,
                             lambda n: progress.phase("checking candidate pairs", n), heard)
    if sheet:
        contact_sheet(report, sheet)
        progress.note(f"contact sheet written to {quote_path(sheet)}")
    return report
