"""`cbir index` (parse and print; the job is in cbir.actions.indexing)."""

from __future__ import annotations

import json

import click

from cbir.actions import indexing
from cbir.cli.common import (
    BarProgress,
    index_option,
    json_option,
    model_option,
    quiet_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.config import resolve_index_dir


@click.command("index")
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
@click.option("--rebuild", is_flag=True,
              help="Start the index over: set its catalog and search index aside (nothing is deleted) and index "
                   "the folders again; for a catalog too damaged to mend (`cbir status --check` says so).")
@quiet_option("No progress bar and no per-file skip lines.")
@json_option
def index_cmd(folders: tuple[str, ...], index_dir: str | None, model: str | None, weights: str | None,
              runtime: str | None, batch_size: int, workers: int | None, threads: int | None,
              index_type: str | None, ray_address: str | None, rebuild: bool, quiet: bool, as_json: bool) -> None:
    """Embed every image under FOLDERS into the index; re-runs only touch what changed.

    With no FOLDERS, every folder indexed before is indexed again.
    """
    setup_logging(quiet)
    with BarProgress(quiet) as bar:
        summary = indexing.index(resolve_index_dir(index_dir), list(folders), model=model, weights=weights,
                                 runtime=runtime, batch_size=batch_size, workers=workers, threads=threads,
                                 index_type=index_type, ray_address=ray_address, rebuild=rebuild,
                                 progress=bar.progress())
    if as_json:
        click.echo(json.dumps(summary, indent=2))
