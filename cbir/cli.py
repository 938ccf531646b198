"""The ``cbir`` command line. Heavy modules are imported inside commands only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cbir import __version__
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
from cbir.cli_output import emit, one_line, quote_path
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import CbirError, UsageError, from_os_error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cbir")
def cli() -> None:
    """cbir: find similar images and clean up photo folders with a ResNet-50."""


@cli.command("index")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@index_option
@model_option
@weights_option
@runtime_option
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Images per model call.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Threads that read, hash and decode images (default: the CPU count).")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Threads the model computes with (default: $CBIR_THREADS, else the CPU count).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "ivf", "hnsw", "ivfpq"]), default=None,
              help="Search index: flat (exact), ivf (IVF with 8-bit codes), hnsw (graph), ivfpq (64-byte codes in "
                   "memory-mapped lists on disk, shortlists re-ranked exactly), or auto: exact up to 20,000 images, "
                   "then ivf, then ivfpq past half this machine's RAM (default: the index's current choice, "
                   "else auto).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Embed on Ray workers (pip install 'cbir[ray]'): alone, on a Ray instance started here; with an "
                   "address (auto, ray://HOST:10001), on that cluster. Workers must see the files at the same paths.")
@quiet_option("No progress bar and no per-file skip lines.")
@json_option
def index_cmd(folders: tuple[str, ...], index_dir: str | None, model: str | None, weights: str | None,
              runtime: str | None, batch_size: int, workers: int | None, threads: int | None,
              index_type: str | None, ray_address: str | None, quiet: bool, as_json: bool) -> None:
    """Embed every image under FOLDERS into the index; re-runs only touch what changed.

    With no FOLDERS, every folder indexed before is indexed again.
    """
    from cbir.config import resolve_index_dir
    from cbir.session import open_store
    from indexer.engines.load import load_embedder
    from indexer.model import resolve_model

    setup_logging(quiet)
    index_path = resolve_index_dir(index_dir)
    roots = [os.path.abspath(f) for f in folders] or _known_roots(index_path)
    loaded = {}

    def claim(status):  # with the lock held, so a busy index fails before the model loads
        from indexer.pipeline import estimate_work

        ref = resolve_model(model, status.model)
        work = estimate_work(roots, status.images, index_path)
        loaded["embedder"] = embedder = load_embedder(weights, ref, runtime, threads, work=work)
        return embedder.model_id, embedder.dim, ref.ref

    with open_store(index_path, claim) as store:
        if store.categories_from:
            from cbir.session import recategorize

            recategorize(store, loaded["embedder"].categorize, loaded["embedder"].model_id,
                         loaded["embedder"].model.ref)
        if index_type:
            store.set_index_type(index_type)
        cluster = None
        if ray_address is not None:
            from indexer.ray_index import engine_spec

            address = None if ray_address == "local" else ray_address
            cluster = (engine_spec(loaded["embedder"], runtime, threads), address)
        summary = index_folders(store, loaded["embedder"], roots, batch_size=batch_size, workers=workers,
                                quiet=quiet, cluster=cluster)
    if as_json:
        click.echo(json.dumps({"index": str(index_path), **summary.as_dict()}, indent=2))


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
@index_option
@model_option
@weights_option
@runtime_option
@click.option("--timings", is_flag=True, help="Also print where the time went, phase by phase, on stderr.")
@click.option("--tag", "tags", multiple=True,
              help="Only images tagged with this word (repeatable: all of them), as `cbir find` matches words.")
@json_option
@null_option
def query_cmd(image: str, k: int, exclude_self: bool, index_dir: str | None, model: str | None,
              weights: str | None, runtime: str | None, timings: bool, tags: tuple[str, ...], as_json: bool,
              null: bool) -> None:
    """Print the K indexed images most similar to IMAGE, best first, as score<TAB>path."""
    from cbir.config import resolve_index_dir
    from cbir.search import Stopwatch, check_query_args, no_close_match, query

    stopwatch = Stopwatch() if timings else None
    setup_logging()
    check_query_args(image, k)
    hits = query(resolve_index_dir(index_dir), image, k, exclude_self=exclude_self, weights=weights,
                 model=model, runtime=runtime, stopwatch=stopwatch, tags=list(tags))
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
    else:
        for hit in hits:
            emit([f"{hit.score:.4f}"], [hit.path], null)
    note = no_close_match(hits)
    if note:
        echo_err(f"cbir: {note}")
    if stopwatch:
        for phase, seconds in stopwatch.phases.items():
            click.echo(f"cbir: {seconds * 1e3:8.1f} ms  {phase}", err=True)
        click.echo(f"cbir: {sum(stopwatch.phases.values()) * 1e3:8.1f} ms  in all, from the command starting", err=True)
        for note in stopwatch.notes:
            echo_err(f"cbir: {note}")


@cli.command("status")
@index_option
@json_option
def status_cmd(index_dir: str | None, as_json: bool) -> None:
    """Where the index is, how many images it holds, which model, and its size on disk."""
    from cbir.config import resolve_index_dir
    from cbir.status import index_status

    status = index_status(resolve_index_dir(index_dir))
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2))
        return
    click.echo(f"index:  {quote_path(status.index_dir)}")
    if not status.exists:
        click.echo("images: 0 (no index yet: run `cbir index DIR`)")
        return
    click.echo(f"images: {status.images}")
    click.echo(f"model:  {status.model or 'unrecorded'} ({status.model_id}, {status.dim}-d)")
    if status.categories:
        click.echo("categories: " + ", ".join(f"{c} {n}" for c, n in status.categories.items()))
    click.echo(f"tags:   {status.tagged} of {status.images} images tagged" if status.tagged else
               "tags:   none yet (`cbir index` adds them, without embedding again)")
    click.echo(f"size:   {status.disk_bytes / 1e6:.1f} MB on disk")
    if status.search_index:
        click.echo(f"search: {status.search_index}")
    click.echo("roots:  " + (", ".join(quote_path(r) for r in status.roots or []) or "none"))
    if status.engines:
        click.echo(f"engine: {status.engines['bulk']['engine']} for bulk work, {status.engines['query']['engine']} "
                   "for a one-off query (`cbir engines` says why)")
    else:
        from indexer.engines.table import MEASURE_FROM

        click.echo(f"engine: not measured on this machine yet; keras-float32 runs until a job of {MEASURE_FROM}+ "
                   "images or `cbir engines --measure` measures them")
    if not status.search_index_current:
        click.echo("note:   the search index is behind the catalog; it is rebuilt on the next query or index")


@cli.command("engines")
@index_option
@model_option
@weights_option
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Threads the engines compute with (default: $CBIR_THREADS, else the CPU count).")
@click.option("--measure", is_flag=True,
              help="Measure them now, again if they were measured before (one to three minutes).")
@json_option
def engines_cmd(index_dir: str | None, model: str | None, weights: str | None, threads: int | None, measure: bool,
                as_json: bool) -> None:
    """Which inference engines run the model on this machine: how faithful to float32 Keras and how fast each
    is, and which one `--runtime auto` picks for bulk work and for a one-off query, and why."""
    from cbir.engines import engines_report

    setup_logging()
    report = engines_report(model, weights, threads, measure, index_dir)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    machine = report["machine"]
    click.echo(f"machine: {machine['cpu']} ({machine['arch']}, {' '.join(machine['flags']) or 'no notable flags'}), "
               f"{report['threads']} threads")
    profile = report["profile"]
    if profile is None:
        from indexer.engines.table import MEASURE_FROM

        click.echo(f"engines: not measured for model {report['model']} on this machine yet; keras-float32 runs "
                   f"jobs under {MEASURE_FROM} images until then. `cbir engines --measure` measures them now.")
        return
    click.echo(f"model:   {report['model']} (trunk {profile['trunk_id']}), measured in {profile['seconds']:.0f}s")
    click.echo(f"{'engine':<20} {'faithful':<9} {'min cosine':>10} {'images/s':>9} {'cold start':>11}")
    for name, v in profile["verdicts"].items():
        cosine = "reference" if v["check"] is None and v["faithful"] else (
            f"{v['check']['min_cosine']:.4f}" if v["check"] else "-")
        speed = f"{v['images_per_s']:.1f}" if v["images_per_s"] else "-"
        cold = f"{v['cold_s']:.2f} s" if v["cold_s"] else "-"
        click.echo(f"{name:<20} {'yes' if v['faithful'] else 'no':<9} {cosine:>10} {speed:>9} {cold:>11}"
                   + (f"  ({v['error']})" if v["error"] else ""))
    for job, label in (("bulk", "bulk work"), ("query", "a query")):
        if profile[job]:
            click.echo(f"{label}: {profile[job]['engine']}: {profile[job]['reason']}")


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
@click.option("--other", "other_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of photos of none of the classes (repeatable, any depth), so the model learns "
                   "'other'; a class folder named 'other' in DATA_DIR counts the same. Without any, photos "
                   "unlike the classes are still recognised from the classes' own photos, less reliably.")
@click.option("--name", default=None, help="Model name for the model card (default: the --out folder's name).")
@click.option("--note", "notes", multiple=True, help="A line for the model card's notes (repeatable).")
@weights_option
@quiet_option("No progress bars.")
@json_option
def train_cmd(data_dir: str, out_dir: str, fine_tune: str, epochs: int, head_epochs: int, val_fraction: float,
              test_fraction: float, seed: int, min_per_class: int, augment_copies: int,
              learning_rate: float | None, batch_size: int, other_dirs: tuple[str, ...], name: str | None,
              notes: tuple[str, ...], weights: str | None, quiet: bool, as_json: bool) -> None:
    """Fine-tune ResNet-50 on DATA_DIR (one subfolder per class) and write a model to --out.

    Use the result with `cbir index --model OUT`, and measure it with `cbir evaluate DATA_DIR --model OUT`.
    """
    setup_logging(quiet)
    from cbir.progress import progress_bar
    from training.trainer import TrainOptions, train

    result = train(TrainOptions(
        Path(data_dir), Path(out_dir), fine_tune=fine_tune, epochs=epochs, head_epochs=head_epochs,
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, min_per_class=min_per_class,
        augment_copies=augment_copies, learning_rate=learning_rate, fine_tune_batch_size=batch_size,
        name=name, notes=list(notes), weights=weights, other=[Path(d) for d in other_dirs],
        progress=lambda desc, total, unit: progress_bar(total, disable=quiet, unit=unit, desc=desc),
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
@model_option
@weights_option
@runtime_option
@click.option("--other", "other_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of photos of none of the categories (repeatable): adds the open-set figures "
                   "(AUROC, FPR at 95% TPR, what a clean would move, calibration). A class folder named "
                   "'other' in DATA_DIR counts the same.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=DEFAULT_MIN_CONFIDENCE, show_default=True,
              help="The clean threshold the open-set figures are computed at.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the confusion matrix as a PNG to this file, and the reliability diagram "
                   "beside it (NAME-reliability.png) when there are open-set figures.")
@click.option("--no-retrieval", is_flag=True,
              help="Skip leave-one-out retrieval (then only the test split of training data is embedded).")
@quiet_option("No progress bar.")
@json_option
def evaluate_cmd(data_dir: str, model: str | None, weights: str | None, runtime: str | None,
                 other_dirs: tuple[str, ...], min_confidence: float, plot_path: str | None, no_retrieval: bool,
                 quiet: bool, as_json: bool) -> None:
    """Measure a model on DATA_DIR (one subfolder per class): classification and retrieval quality.

    On the model's own training data only its recorded test split is classified.
    """
    setup_logging(quiet)
    from cbir.progress import progress_bar
    from indexer.engines.load import load_embedder
    from indexer.pipeline import estimate_work
    from training.evaluate import evaluate

    embedder = load_embedder(weights, model, runtime, work=estimate_work([data_dir, *other_dirs]))
    with progress_bar(disable=quiet) as bar:
        bar.set_description("embedding")

        def on_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        report = evaluate(data_dir, embedder, other=list(other_dirs), threshold=min_confidence,
                          retrieval=not no_retrieval, on_progress=bar.update, on_total=on_total)
    for path, reason in report.skipped:
        echo_err(f"cbir: skipped {quote_path(path)}: {reason}")
    if plot_path and report.classification is not None:
        from training.plots import plot_confusion

        plot_confusion(report.classification.classes, report.classification.confusion, Path(plot_path),
                       f"{report.model}: {report.classification_scope}")
        echo_err(f"cbir: confusion matrix written to {quote_path(plot_path)}")
        if report.open_set is not None:
            from training.plots import plot_reliability

            reliability = Path(plot_path).with_name(Path(plot_path).stem + "-reliability.png")
            plot_reliability(report.open_set.reliability, report.open_set.ece, reliability, report.model)
            echo_err(f"cbir: reliability diagram written to {quote_path(reliability)}")
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text(), nl=as_json)


def _register_clean_commands() -> None:
    from cbir.cli_clean import clean_cmd, duplicates_cmd, history_cmd, undo_cmd

    for command in (clean_cmd, undo_cmd, history_cmd, duplicates_cmd):
        cli.add_command(command)


_register_clean_commands()


def _register_tag_commands() -> None:
    from cbir.cli_tags import find_cmd, tags_cmd

    for command in (find_cmd, tags_cmd):
        cli.add_command(command)


_register_tag_commands()


def _register_serve_command() -> None:
    from cbir.cli_serve import serve_cmd

    cli.add_command(serve_cmd)


_register_serve_command()


def main() -> None:
    """Entry point: run the CLI, mapping every failure to one line on stderr and an exit code.

    Library code raises typed errors (cbir.errors); anything else is a bug or an environment
    problem, reported in one line too. ``CBIR_DEBUG=1`` shows the traceback.
    """
    try:
        cli.main(standalone_mode=False)
    except CbirError as exc:
        _fail(str(exc), exc.exit_code, exc)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        echo_err("cbir: interrupted; what was committed before it is kept (index batches, clean journal); "
                 "a half-trained model is discarded; an interrupted clean or undo is settled by the next one")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        typed = from_os_error(exc, exc.filename or ".", "this command")
        if typed is not None:
            _fail(str(typed), typed.exit_code, exc)
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1, exc)
    except Exception as exc:  # a bug: still one line, with a way to see more
        _fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(this is a bug in cbir; set CBIR_DEBUG=1 to see where)", 1, exc)


def _fail(message: str, code: int, exc: BaseException | None = None) -> None:
    if exc is not None and os.environ.get("CBIR_DEBUG", "").strip() not in ("", "0"):
        import traceback

        traceback.print_exception(exc)
    click.echo(f"cbir: error: {one_line(message)}", err=True)
    sys.exit(code)
