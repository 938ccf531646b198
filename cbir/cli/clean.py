"""`cbir clean`, `cbir undo` and `cbir history` (parse and print; the jobs are in cbir.actions)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import click

from cbir.actions import clean as cleaning
from cbir.actions import undo as undoing
from cbir.actions.clean import CleanRequest
from cbir.cli.common import (
    BarProgress,
    echo_err,
    index_option,
    json_option,
    model_option,
    null_option,
    quiet_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.cli.output import emit
from cbir.config import DEFAULT_MIN_CONFIDENCE, resolve_index_dir
from cbir.errors import IncompleteMoveError
from cbir.text import quote_path

_CONFIDENCE_HELP = (
    f"Leave images whose category probability is below this in place (default {DEFAULT_MIN_CONFIDENCE}). The "
    "probabilities are calibrated on held-out photos, so 0.7 means about 7 in 10 right. Images judged 'other' "
    "(none of the categories) are never moved."
)


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
    setup_logging(quiet)
    request = CleanRequest(list(categories), list(in_dirs), str(Path(dest).expanduser().resolve()) if dest else None,
                           min_confidence, model, weights, runtime)
    with BarProgress(quiet, unit="file") as bar:
        job = cleaning.clean if yes else cleaning.clean_plan
        report = job(resolve_index_dir(index_dir), request, progress=bar.progress())
    print_moves(report, as_json, null)
    moves = report["moves"]
    per_category: dict[str, int] = {}
    for move in moves:
        per_category[move["category"]] = per_category.get(move["category"], 0) + 1
    _summary(dict(sorted(per_category.items())), report, min_confidence)
    fail_if_some_not_moved(report)


def print_moves(report: dict, as_json: bool, null: bool) -> None:
    """A clean's (or moving duplicates') moves: the skipped and failed files on stderr, then the moves."""
    for skipped in report["left_in_place"]["skipped"]:
        echo_err(f"cbir: skipped {quote_path(skipped['path'])}: {skipped['reason']}")
    for failed in report["failed"]:
        echo_err(f"cbir: not moved {quote_path(failed['path'])}: {failed['reason']}")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for m in report["moves"]:
        emit([m["category"], f"{m['confidence']:.4f}"], [m["path"], m["destination"]], null)


def fail_if_some_not_moved(report: dict) -> None:
    if report["failed"]:
        planned = len(report["moves"]) + len(report["failed"])
        raise IncompleteMoveError(f"{len(report['failed'])} of {planned} planned file(s) could not be moved "
                                  "(listed above); they are where they were")


def _summary(per_category: dict[str, int], report: dict, threshold: float) -> None:
    moved, run_id, failed = not report["dry_run"], report["run_id"], len(report["failed"])
    left = report["left_in_place"]
    total = sum(per_category.values())
    counts = ", ".join(f"{c} {n}" for c, n in per_category.items()) or "nothing"
    verb = "moved" if moved else "would move"
    line = f"cbir: {verb} {total} image(s): {counts}"
    extra = []
    if left['no_category']:
        extra.append(f"{left['no_category']} left in place as belonging to no category")
    if left['below_confidence']:
        extra.append(f"{left['below_confidence']} left in place below confidence {threshold:g}")
    if left['already_sorted']:
        extra.append(f"{left['already_sorted']} already in a category folder")
    if left['skipped']:
        extra.append(f"{len(left['skipped'])} skipped")
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
    setup_logging(quiet)
    with BarProgress(quiet, unit="file") as bar:
        job = undoing.undo if yes else undoing.undo_plan
        report = job(resolve_index_dir(index_dir), run_id, progress=bar.progress())
    chosen, files = report["run_id"], report["files"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for item in files:
            if item["problem"]:
                echo_err(f"cbir: cannot put back {quote_path(item['path'])}: {item['problem']}")
            else:
                emit([], [item["from"], item["path"]], null)
    problems = [f for f in files if f["problem"]]
    if not yes:
        echo_err(f"cbir: would put back {len(files) - len(problems)} of {len(files)} file(s) of run {chosen}; "
                 "dry run, nothing was moved; add --yes to move")
        return
    echo_err(f"cbir: put back {len(files) - len(problems)} file(s) of run {chosen}"
             + (f"; {len(problems)} could not be put back (listed above)" if problems else ""))
    if problems:
        raise IncompleteMoveError(f"run {chosen} is only partly undone; fix the paths listed and run "
                                  f"`cbir undo {chosen} --yes` again")


@click.command("history")
@index_option
@json_option
def history_cmd(index_dir: str | None, as_json: bool) -> None:
    """List clean runs: id, time, state, files moved, undone, categories.

    A run killed before it finished shows as 'interrupted'; the next clean or undo settles it.
    """
    runs = undoing.history(resolve_index_dir(index_dir))
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    if not runs:
        echo_err("no clean runs yet")
        return
    click.echo("run\tstarted\tstate\tmoved\tundone\tcategories")
    for r in runs:
        when = _dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{r['id']}\t{when}\t{r['state']}\t{r['moved']}\t{r['undone']}\t{','.join(r['categories'])}")
