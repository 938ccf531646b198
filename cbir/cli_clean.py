"""The ``cbir clean``, ``cbir undo`` and ``cbir history`` commands (registered by cbir.cli).

The work is in the library (cbir.clean, cbir.undo, cbir.session); these commands parse options
and print.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import click

from cbir.cli_common import (
    echo_err,
    index_folders,
    index_option,
    json_option,
    model_option,
    null_option,
    quiet_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.cli_output import emit, quote_path
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import IncompleteMoveError, UsageError

_CONFIDENCE_HELP = (
    f"Leave images whose category probability is below this in place (default {DEFAULT_MIN_CONFIDENCE}). The "
    "probabilities are calibrated on held-out photos, so 0.7 means about 7 in 10 right. Images judged 'other' "
    "(none of the categories) are never moved."
)


def _open_session(index_dir: str | None):
    from cbir.config import resolve_index_dir
    from cbir.session import MoveSession

    session = MoveSession.open(resolve_index_dir(index_dir))
    if session.recovered:
        echo_err(f"cbir: settled {session.recovered} interrupted clean or undo run(s); see `cbir history`")
    return session


@click.command("clean")
@click.option("--category", "categories", multiple=True, required=True,
              help="Category to move out (repeatable); 'all' for every category the model knows.")
@click.option("--in", "in_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Only images under this folder (repeatable; default: every indexed folder). "
                   "New or changed images there are indexed first.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Put the category folders here (default: a folder named after the category inside the "
                   "indexed folder each image belongs to).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=DEFAULT_MIN_CONFIDENCE, help=_CONFIDENCE_HELP)
@click.option("--yes", is_flag=True, help="Really move the files. Without it, clean is a dry run.")
@index_option
@model_option
@weights_option
@runtime_option
@quiet_option("No progress bars and no per-file lines on stderr.")
@json_option
@null_option
def clean_cmd(categories: tuple[str, ...], in_dirs: tuple[str, ...], dest: str | None,
              min_confidence: float, yes: bool, index_dir: str | None, model: str | None,
              weights: str | None, runtime: str | None, quiet: bool, as_json: bool, null: bool) -> None:
    """Move images of the given categories into per-category folders (a dry run unless --yes).

    Files reached through a symbolic link are never moved. Every run is journaled: `cbir undo` puts it
    back, `cbir history` lists runs. Exits 10 when some planned files could not be moved.
    """
    from cbir.clean import CleanRequest, execute_clean, prepare_clean
    from cbir.progress import progress_bar

    setup_logging(quiet)
    request = CleanRequest(list(categories), list(in_dirs), str(Path(dest).expanduser().resolve()) if dest else None,
                           min_confidence, model, weights, runtime)
    with _open_session(index_dir) as session:
        plan, chosen = prepare_clean(
            session, request,
            lambda embedder, folders, register: index_folders(session.store, embedder, folders, quiet=quiet,
                                                              register=register))
        for path, reason in plan.skipped:
            echo_err(f"cbir: skipped {quote_path(path)}: {reason}")
        if not yes:
            _print_moves(plan.moves, as_json, null, dry_run=True, plan=plan)
            _summary(plan.per_category(), plan, min_confidence, moved=False)
            return
        with progress_bar(len(plan.moves), disable=quiet, unit="file") as bar:
            bar.set_description("moving")
            result = execute_clean(plan, session.journal, session.store, chosen, request.dest, session.roots,
                                   on_progress=bar.update)
        for path, reason in result.failed:
            echo_err(f"cbir: not moved {quote_path(path)}: {reason}")
        _print_moves(result.moved, as_json, null, dry_run=False, run_id=result.run_id, failed=result.failed,
                     plan=plan)
        _summary(result.per_category(), plan, min_confidence, moved=True, run_id=result.run_id,
                 failed=len(result.failed))
    if result.failed:
        raise IncompleteMoveError(f"{len(result.failed)} of {len(plan.moves)} planned file(s) could not be moved "
                                  "(listed above); they are where they were")


def _print_moves(moves, as_json: bool, null: bool, *, dry_run: bool, plan, run_id: int | None = None,
                 failed=()) -> None:
    if as_json:
        from cbir.clean import moves_report

        click.echo(json.dumps(moves_report(moves, plan, dry_run=dry_run, run_id=run_id, failed=failed), indent=2))
        return
    for m in moves:
        emit([m.category, f"{m.confidence:.4f}"], [m.src, m.dst], null)


def _summary(per_category: dict[str, int], plan, threshold: float, *, moved: bool, run_id: int | None = None,
             failed: int = 0) -> None:
    total = sum(per_category.values())
    counts = ", ".join(f"{c} {n}" for c, n in per_category.items()) or "nothing"
    verb = "moved" if moved else "would move"
    line = f"cbir: {verb} {total} image(s): {counts}"
    extra = []
    if plan.no_category:
        extra.append(f"{plan.no_category} left in place as belonging to no category")
    if plan.below_confidence:
        extra.append(f"{plan.below_confidence} left in place below confidence {threshold:g}")
    if plan.already_sorted:
        extra.append(f"{plan.already_sorted} already in a category folder")
    if plan.skipped:
        extra.append(f"{len(plan.skipped)} skipped")
    if failed:
        extra.append(f"{failed} could not be moved")
    echo_err(line + (f"; {'; '.join(extra)}" if extra else ""))
    if not moved:
        echo_err("cbir: dry run, nothing was moved; add --yes to move")
    elif total:
        echo_err(f"cbir: recorded as run {run_id}; `cbir undo {run_id} --yes` puts it back")


@click.command("undo")
@click.argument("run_id", type=int, required=False)
@click.option("--yes", is_flag=True, help="Really move the files back. Without it, undo is a dry run.")
@index_option
@quiet_option("No progress bar.")
@json_option
@null_option
def undo_cmd(run_id: int | None, yes: bool, index_dir: str | None, quiet: bool, as_json: bool, null: bool) -> None:
    """Put back the files of clean run RUN_ID (default: the last run with files to put back).

    Prints from<TAB>to for each file. Exits 10 when some files could not be put back.
    """
    from cbir.progress import progress_bar
    from cbir.undo import execute_undo, pick_run, plan_undo

    setup_logging(quiet)
    with _open_session(index_dir) as session:
        chosen = pick_run(session.journal, run_id)
        plan = plan_undo(session.journal, session.store, chosen, session.roots)
        if not yes:
            ready = [r for r in plan if r.problem is None]
            _print_restores(plan, as_json, null, chosen, dry_run=True)
            echo_err(f"cbir: would put back {len(ready)} of {len(plan)} file(s) of run {chosen}; "
                     "dry run, nothing was moved; add --yes to move")
            return
        with progress_bar(len(plan), disable=quiet, unit="file") as bar:
            bar.set_description("restoring")
            result = execute_undo(plan, session.journal, session.store, chosen, session.roots,
                                  on_progress=bar.update)
        _print_restores(result.restored + result.problems, as_json, null, chosen, dry_run=False)
        echo_err(f"cbir: put back {len(result.restored)} file(s) of run {chosen}"
                 + (f"; {len(result.problems)} could not be put back (listed above)" if result.problems else ""))
    if result.problems:
        raise IncompleteMoveError(f"run {chosen} is only partly undone; fix the paths listed and run "
                                  f"`cbir undo {chosen} --yes` again")


def _print_restores(items, as_json: bool, null: bool, run_id: int, *, dry_run: bool) -> None:
    if as_json:
        from cbir.undo import restores_report

        click.echo(json.dumps(restores_report(run_id, items, dry_run=dry_run), indent=2))
        return
    for item in items:
        if item.problem:
            echo_err(f"cbir: cannot put back {quote_path(item.move.src)}: {item.problem}")
        else:
            emit([], [item.current, item.move.src], null)


@click.command("history")
@index_option
@json_option
def history_cmd(index_dir: str | None, as_json: bool) -> None:
    """List clean runs: id, time, state, files moved, undone, categories.

    A run killed before it finished shows as 'interrupted'; the next clean or undo settles it.
    """
    from cbir.config import resolve_index_dir
    from cbir.undo import clean_history

    runs = clean_history(resolve_index_dir(index_dir))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in runs], indent=2))
        return
    if not runs:
        echo_err("no clean runs yet")
        return
    click.echo("run\tstarted\tstate\tmoved\tundone\tcategories")
    for r in runs:
        when = _dt.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{r.id}\t{when}\t{r.state}\t{r.moved}\t{r.undone}\t{','.join(r.categories)}")


@click.command("duplicates")
@click.option("--in", "in_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Only indexed images under this folder (repeatable; default: every indexed folder).")
@click.option("--level", type=click.Choice(["exact", "near", "similar"]), default="near", show_default=True,
              help="exact: the same bytes; near: the same photo re-encoded, resized, cropped, rotated or lightly "
                   "edited; similar: also burst shots and the same scene a moment apart.")
@click.option("--prefer", "prefer", multiple=True, type=click.Path(file_okay=False),
              help="Keep the copy in this folder when a group has one there (repeatable), before any other rule.")
@click.option("--move-extras", is_flag=True,
              help="Move every copy but the best of each group into a 'duplicates' folder (a dry run unless "
                   "--yes); `cbir undo` puts them back.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="With --move-extras: put the 'duplicates' folder here (default: inside the indexed folder "
                   "each copy belongs to).")
@click.option("--yes", is_flag=True, help="With --move-extras: really move the files.")
@click.option("--sheet", "sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a contact sheet of the groups to this PNG (the keeper marked, similarity and "
                   "reason under each).")
@index_option
@quiet_option("No progress bar and no per-group lines on stderr.")
@json_option
@null_option
def duplicates_cmd(in_dirs: tuple[str, ...], level: str, prefer: tuple[str, ...], move_extras: bool,
                   dest: str | None, yes: bool, sheet: str | None, index_dir: str | None, quiet: bool,
                   as_json: bool, null: bool) -> None:
    """List groups of duplicates among indexed images, the copy to keep first, and why.

    Prints group<TAB>keep|copy<TAB>similarity<TAB>path lines. With --move-extras every copy but the
    best goes into a 'duplicates' folder, journaled like clean: `cbir undo` puts them back.
    """
    from cbir.config import resolve_index_dir
    from cbir.duplicates import find_duplicates
    from cbir.progress import progress_bar

    setup_logging(quiet)
    scope = [str(Path(d).expanduser().resolve()) for d in in_dirs]
    prefer_paths = [str(Path(d).expanduser().resolve()) for d in prefer]
    dest_path = str(Path(dest).expanduser().resolve()) if dest else None
    if (dest or yes) and not move_extras:
        raise UsageError("--dest and --yes go with --move-extras")
    bar = progress_bar(disable=quiet, unit="img", desc="checking candidates")
    try:
        if not move_extras:
            from index_store import IndexReader

            reader = IndexReader.open(resolve_index_dir(index_dir))
            try:
                report = find_duplicates(reader, level, scope, reader.roots(), prefer_paths, bar.update)
            finally:
                reader.close()
            bar.close()
            _print_groups(report, as_json, null, quiet)
            if sheet:
                _write_sheet(report, sheet)
            return
        with _open_session(index_dir) as session:
            bases = [*session.roots, *([dest_path] if dest_path else [])]
            report = find_duplicates(session.store, level, scope, bases, prefer_paths, bar.update)
            bar.close()
            if not quiet:
                _group_reasons(report)
            if sheet:
                _write_sheet(report, sheet)
            _move_extras(session, report, dest_path, yes, as_json, null, quiet)
    finally:
        bar.close()


def _print_groups(report, as_json: bool, null: bool, quiet: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for number, group in enumerate(report.groups, 1):
            for member in group.members:
                emit([str(number), "keep" if member.keep else "copy", f"{member.similarity:.4f}"], [member.path],
                     null)
    if not quiet:
        _group_reasons(report)
    echo_err(f"cbir: {len(report.groups)} group(s), {report.extra_copies} extra copies among {report.images} "
             f"image(s) (level {report.level}, {report.checked_pairs} of {report.candidate_pairs} candidate pairs "
             f"checked, {report.seconds:.1f}s)")


def _group_reasons(report) -> None:
    for number, group in enumerate(report.groups, 1):
        echo_err(f"cbir: group {number}: keeping {quote_path(group.keeper.path)}: {group.reason}")


def _write_sheet(report, path: str) -> None:
    from cbir.duplicates import contact_sheet

    contact_sheet(report, path)
    echo_err(f"cbir: contact sheet written to {quote_path(path)}")


def _move_extras(session, report, dest: str | None, yes: bool, as_json: bool, null: bool, quiet: bool) -> None:
    from cbir.clean import execute_clean
    from cbir.duplicates import DUPLICATES_FOLDER, plan_extras
    from cbir.progress import progress_bar

    plan = plan_extras(report, session.store, session.roots, dest)
    for path, reason in plan.skipped:
        echo_err(f"cbir: skipped {quote_path(path)}: {reason}")
    if not yes:
        _print_moves(plan.moves, as_json, null, dry_run=True, plan=plan)
        echo_err(f"cbir: would move {len(plan.moves)} extra copies of {len(report.groups)} group(s) into "
                 f"'{DUPLICATES_FOLDER}' folders; dry run, nothing was moved; add --yes to move")
        return
    with progress_bar(len(plan.moves), disable=quiet, unit="file") as bar:
        bar.set_description("moving")
        result = execute_clean(plan, session.journal, session.store, [DUPLICATES_FOLDER], dest, session.roots,
                               on_progress=bar.update)
    for path, reason in result.failed:
        echo_err(f"cbir: not moved {quote_path(path)}: {reason}")
    _print_moves(result.moved, as_json, null, dry_run=False, run_id=result.run_id, failed=result.failed, plan=plan)
    echo_err(f"cbir: moved {len(result.moved)} extra copies; recorded as run {result.run_id}; "
             f"`cbir undo {result.run_id} --yes` puts them back")
    if result.failed:
        raise IncompleteMoveError(f"{len(result.failed)} of {len(plan.moves)} planned file(s) could not be moved "
                                  "(listed above); they are where they were")
