"""The ``cbir clean``, ``cbir undo`` and ``cbir history`` commands (registered by cbir.cli)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import click

from cbir.cli import (_index_option, _json_option, _model_option, _run_index, _runtime_option, _setup_logging,
                      _weights_option)
from cbir.errors import IndexEmptyError, IndexIncompatibleError, PartlyUndoneError

_CONFIDENCE_HELP = (
    "Leave images whose category probability is below this in place (default 0.7: on the default model's "
    "82 validation and test images its 3 mistakes scored 0.54-0.67, and 78 of 79 correct ones above 0.7)."
)


def _open_index(index_dir: str | None):
    """The existing index, opened for writing under its own model id (no model loaded)."""
    from cbir.config import resolve_index_dir
    from cbir.status import index_status
    from index_store import IndexStore

    index_path = resolve_index_dir(index_dir)
    lock = IndexStore.lock(index_path)
    try:
        status = index_status(index_path)
        if not status.exists or not status.images:
            raise IndexEmptyError(f"index {index_path} holds no images: run `cbir index DIR` first")
    except BaseException:
        lock.release()
        raise
    return IndexStore.open(index_path, status.model_id, status.dim, lock=lock), status


@click.command("clean")
@click.option("--category", "categories", multiple=True, required=True,
              help="Category to move out (repeatable); 'all' for every category the model knows.")
@click.option("--in", "in_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Only images under this folder (repeatable; default: every indexed folder). "
                   "New or changed images there are indexed first.")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Put the category folders here (default: a folder named after the category inside the "
                   "indexed folder each image belongs to).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None, help=_CONFIDENCE_HELP)
@click.option("--yes", is_flag=True, help="Really move the files. Without it, clean is a dry run.")
@_index_option
@_model_option
@_weights_option
@_runtime_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no per-file lines on stderr.")
@_json_option
def clean_cmd(categories: tuple[str, ...], in_dirs: tuple[str, ...], dest: str | None,
              min_confidence: float | None, yes: bool, index_dir: str | None, model: str | None,
              weights: str | None, runtime: str | None, quiet: bool, as_json: bool) -> None:
    """Move images of the given categories into per-category folders (a dry run unless --yes).

    Every run is journaled: `cbir undo` puts it back, `cbir history` lists runs.
    """
    from cbir.clean import DEFAULT_MIN_CONFIDENCE, check_categories, execute_clean, plan_clean, recover_interrupted
    from cbir.progress import progress_bar
    from index_store.journal import Journal
    from indexer.model import resolve_model
    from indexer.pipeline import count_pending

    _setup_logging(quiet)
    threshold = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    dest_path = str(Path(dest).expanduser().resolve()) if dest else None
    store, status = _open_index(index_dir)
    with store, Journal(store.index_dir) as journal:
        recovered = recover_interrupted(journal, store)
        if recovered:
            click.echo(f"cbir: settled {recovered} interrupted clean run(s); see `cbir history`", err=True)
        ref = resolve_model(model, status.model)
        embedder = None
        if ref.ref != status.model:  # another model asked for: refuse before anything moves
            embedder = _load_matching(weights, ref, store, status, runtime)
        chosen = check_categories(list(categories), ref.classes)
        roots = status.roots or []
        scope = [os.path.abspath(d) for d in in_dirs] or roots
        outside = [d for d in scope if not any(d == r or _inside(d, r) for r in roots)]
        if count_pending(store, scope):
            embedder = embedder or _load_matching(weights, ref, store, status, runtime)
            inside = [d for d in scope if d not in outside]
            if outside:
                _run_index(store, embedder, outside, quiet=quiet)  # new folders become indexed roots
                roots = roots + outside
            if inside:
                _run_index(store, embedder, inside, quiet=quiet, register=False)
        plan = plan_clean(store, chosen, ref.classes, scope, roots, dest_path, threshold)
        for path, reason in plan.skipped:
            click.echo(f"cbir: skipped {path}: {reason}", err=True)
        if not yes:
            _print_moves(plan.moves, as_json, dry_run=True)
            _summary(plan.per_category(), plan, threshold, moved=False)
            return
        with progress_bar(len(plan.moves), disable=quiet, unit="file") as bar:
            bar.set_description("moving")
            result = execute_clean(plan, journal, store, chosen, dest_path, on_progress=bar.update)
        for path, reason in result.failed:
            click.echo(f"cbir: not moved {path}: {reason}", err=True)
        _print_moves(result.moved, as_json, dry_run=False, run_id=result.run_id, failed=result.failed)
        _summary(result.per_category(), plan, threshold, moved=True, run_id=result.run_id,
                 failed=len(result.failed))


def _load_matching(weights: str | None, ref, store, status, runtime: str | None = None):
    from indexer.embedder import load_embedder

    embedder = load_embedder(weights, ref, runtime)
    if embedder.model_id != store.model_id:
        raise IndexIncompatibleError(
            f"index {store.index_dir} was built with model {status.model or store.model_id}, not {ref.ref}; "
            "vectors from two models cannot be mixed: clean with the index's model")
    return embedder


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _print_moves(moves, as_json: bool, *, dry_run: bool, run_id: int | None = None, failed=()) -> None:
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "run_id": run_id, "moves": [m.as_dict() for m in moves],
                               "failed": [{"path": p, "reason": r} for p, r in failed]}, indent=2))
        return
    for m in moves:
        click.echo(f"{m.category}\t{m.confidence:.4f}\t{m.src}\t{m.dst}")


def _summary(per_category: dict[str, int], plan, threshold: float, *, moved: bool, run_id: int | None = None,
             failed: int = 0) -> None:
    total = sum(per_category.values())
    counts = ", ".join(f"{c} {n}" for c, n in per_category.items()) or "nothing"
    verb = "moved" if moved else "would move"
    line = f"cbir: {verb} {total} image(s): {counts}"
    extra = []
    if plan.below_confidence:
        extra.append(f"{plan.below_confidence} left in place below confidence {threshold:g}")
    if plan.already_sorted:
        extra.append(f"{plan.already_sorted} already in a category folder")
    if plan.skipped:
        extra.append(f"{len(plan.skipped)} skipped")
    if failed:
        extra.append(f"{failed} could not be moved")
    click.echo(line + (f"; {'; '.join(extra)}" if extra else ""), err=True)
    if not moved:
        click.echo("cbir: dry run, nothing was moved; add --yes to move", err=True)
    elif total:
        click.echo(f"cbir: recorded as run {run_id}; `cbir undo {run_id} --yes` puts it back", err=True)


@click.command("undo")
@click.argument("run_id", type=int, required=False)
@click.option("--yes", is_flag=True, help="Really move the files back. Without it, undo is a dry run.")
@_index_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_json_option
def undo_cmd(run_id: int | None, yes: bool, index_dir: str | None, quiet: bool, as_json: bool) -> None:
    """Put back the files of clean run RUN_ID (default: the last run with files to put back)."""
    from cbir.clean import recover_interrupted
    from cbir.progress import progress_bar
    from cbir.undo import execute_undo, pick_run, plan_undo
    from index_store.journal import Journal

    _setup_logging(quiet)
    store, _ = _open_index(index_dir)
    with store, Journal(store.index_dir) as journal:
        recover_interrupted(journal, store)
        chosen = pick_run(journal, run_id)
        plan = plan_undo(journal, store, chosen)
        if not yes:
            ready = [r for r in plan if r.problem is None]
            _print_restores(plan, as_json, chosen, dry_run=True)
            click.echo(f"cbir: would put back {len(ready)} of {len(plan)} file(s) of run {chosen}; "
                       "dry run, nothing was moved; add --yes to move", err=True)
            return
        with progress_bar(len(plan), disable=quiet, unit="file") as bar:
            bar.set_description("restoring")
            result = execute_undo(plan, journal, store, chosen, on_progress=bar.update)
        _print_restores(result.restored + result.problems, as_json, chosen, dry_run=False)
        click.echo(f"cbir: put back {len(result.restored)} file(s) of run {chosen}"
                   + (f"; {len(result.problems)} could not be put back (listed above)" if result.problems else ""),
                   err=True)
        if result.problems:
            raise PartlyUndoneError(f"run {chosen} is only partly undone; fix the paths listed and run "
                                    f"`cbir undo {chosen} --yes` again")


def _print_restores(items, as_json: bool, run_id: int, *, dry_run: bool) -> None:
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "dry_run": dry_run, "files": [i.as_dict() for i in items]},
                              indent=2))
        return
    for item in items:
        if item.problem:
            click.echo(f"cbir: cannot put back {item.move.src}: {item.problem}", err=True)
        else:
            click.echo(f"{item.current}\t{item.move.src}")


@click.command("history")
@_index_option
@_json_option
def history_cmd(index_dir: str | None, as_json: bool) -> None:
    """List clean runs: id, time, state, files moved, categories."""
    from cbir.config import resolve_index_dir
    from index_store.journal import JOURNAL_FILE, Journal

    index_path = resolve_index_dir(index_dir)
    if not (index_path / JOURNAL_FILE).is_file():
        runs = []
    else:
        with Journal(index_path) as journal:
            runs = journal.runs()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in runs], indent=2))
        return
    if not runs:
        click.echo("no clean runs yet", err=True)
        return
    click.echo("run\tstarted\tstate\tmoved\tundone\tcategories")
    for r in runs:
        when = _dt.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{r.id}\t{when}\t{r.state}\t{r.moved}\t{r.undone}\t{','.join(r.categories)}")
