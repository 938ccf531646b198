"""`cbir watch` (parse and print; the job is in cbir.actions.watching)."""

from __future__ import annotations

import json
import signal
import threading

import click

from cbir.actions import watching
from cbir.actions.progress import Progress
from cbir.cli.common import echo_err, index_option, model_option, runtime_option, setup_logging, weights_option
from cbir.config import resolve_index_dir
from cbir.text import quote_path


def watch_options(fn):
    """The options `cbir watch` and `cbir serve --watch` share."""
    fn = click.option("--settle", "settle_s", type=click.FloatRange(0.1, 600), default=1.0, show_default=True,
                      metavar="SECONDS",
                      help="Seconds a changed file must stay unchanged before it is read (so that a file still "
                           "being copied is read once, complete).")(fn)
    fn = click.option("--release-after", "release_after_s", type=click.FloatRange(1, 86400), default=120,
                      metavar="SECONDS", show_default=True,
                      help="Seconds without a change after which the model is released (it loads again, in a few "
                           "seconds, with the next change).")(fn)
    fn = click.option("--forget-after", "forget_after_s", type=click.FloatRange(0, 3650), default=None,
                      metavar="DAYS", callback=lambda ctx, param, days: None if days is None else days * 86400,
                      help="Drop the photos of a watched folder that has been away (an unmounted drive) this many "
                           "days. Default: never; they stay until it comes back.")(fn)
    return fn


def batch_line(summary: dict) -> str:
    """One stderr line for a job of the watcher."""
    counts = ", ".join(f"{summary[k]} {k}" for k in ("added", "updated", "renamed", "removed") if summary.get(k))
    skipped = sum(summary.get("skipped", {}).values())
    engine = f" by {summary['engine']}" if summary.get("added") or summary.get("updated") else ""
    return (f"cbir: {counts or 'nothing new'}" + (f", {skipped} skipped" if skipped else "")
            + f" in {summary['seconds']:.1f}s{engine}")


@click.command("watch")
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@index_option
@watch_options
@model_option
@weights_option
@runtime_option
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr (no line per change).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per indexing job on stdout as it ends (and the totals at the end).")
def watch_cmd(folders: tuple[str, ...], index_dir: str | None, settle_s: float, release_after_s: float,
              forget_after_s: float | None, model: str | None, weights: str | None, runtime: str | None,
              quiet: bool, as_json: bool) -> None:
    """Keep the index current: index photos as they are added, changed, moved or deleted under FOLDERS.

    With no FOLDERS, every folder indexed before is watched. It first catches up with what changed since
    the last run, then waits for changes (no polling: inotify on Linux). The model loads with the first
    change and is released when nothing changes for a while. A folder that goes away (an unmounted drive)
    keeps its photos in the index and is watched again when it comes back. Stop with Ctrl-C; run it as a
    service with docs/cbir-watch.service.
    """
    setup_logging(quiet)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemd's stop: finish the job in hand, then end

    def on_batch(summary: dict) -> None:
        if as_json:
            click.echo(json.dumps(summary), nl=True)
        if not quiet:
            echo_err(batch_line(summary))

    progress = Progress(note=(lambda text: None) if quiet else (lambda text: echo_err(f"cbir: {text}")),
                        skipped=(lambda path, reason, detail: None) if quiet else
                        (lambda path, reason, detail: echo_err(f"cbir: skipped {quote_path(path)}: {reason}")))
    try:
        totals = watching.watch(resolve_index_dir(index_dir), list(folders), model=model, weights=weights,
                                runtime=runtime, settle_s=settle_s, release_after_s=release_after_s,
                                forget_after_s=forget_after_s,
                                progress=progress, on_batch=on_batch, stop=stop)
    except KeyboardInterrupt:
        if not quiet:
            echo_err("cbir: stopped")
        raise
    if as_json:
        click.echo(json.dumps({"totals": totals}))
    if not quiet:
        echo_err("cbir: stopped")
