"""`cbir status` and `cbir engines` (parse and print; the jobs are in cbir.actions.status)."""

from __future__ import annotations

import json
import time

import click

from cbir.actions import status as actions
from cbir.cli.common import echo_err, index_option, json_option, model_option, setup_logging, weights_option
from cbir.config import resolve_index_dir
from cbir.errors import DamagedFileError
from cbir.status import IndexStatus
from cbir.text import quote_path
from indexer.engines.table import MEASURE_FROM


@click.command("status")
@index_option
@click.option("--check", "full_check", is_flag=True,
              help="Check the whole index (the catalog with SQLite's integrity check, its vectors and tags, the "
                   "search index and its manifest, the clean journal) and say what mends each problem; exits 13 "
                   "when something is damaged.")
@json_option
def status_cmd(index_dir: str | None, full_check: bool, as_json: bool) -> None:
    """Where the index is, how many images it holds, which model, and its size on disk."""
    if full_check:
        report = actions.check(resolve_index_dir(index_dir))
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            for problem in report["problems"]:
                click.echo(f"damaged\t{problem['part']}\t{problem['detail']}\t{problem['repair']}")
        if not report["ok"]:
            raise DamagedFileError(f"index {report['index']} has {len(report['problems'])} problem(s), listed above")
        echo_err(f"cbir: index {quote_path(report['index'])} checked: no damage found")
        return
    status = IndexStatus(**actions.status(resolve_index_dir(index_dir)))
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
    click.echo(f"tags:   {status.tagged} of {status.images} images tagged"
               + ("" if status.tags_current else " by an older vocabulary (`cbir index` remakes them, without "
                  "embedding again)") if status.tagged else
               "tags:   none yet (`cbir index` adds them, without embedding again)")
    click.echo(f"size:   {status.disk_bytes / 1e6:.1f} MB on disk")
    if status.search_index:
        click.echo(f"search: {status.search_index}")
    click.echo("roots:  " + (", ".join(quote_path(r) for r in status.roots or []) or "none"))
    if status.engines:
        click.echo(f"engine: {status.engines['bulk']['engine']} for bulk work, {status.engines['query']['engine']} "
                   "for a one-off query (`cbir engines` says why)")
    else:
        click.echo(f"engine: not measured on this machine yet; keras-float32 runs until a job of {MEASURE_FROM}+ "
                   "images or `cbir engines --measure` measures them")
    if status.watcher:
        watcher = status.watcher
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(watcher["since"]))
        away = f"; away: {', '.join(quote_path(f) for f in watcher['away'])}" if watcher.get("away") else ""
        click.echo(f"watch:  kept current by `cbir watch` (pid {watcher['pid']}, since {since}), watching "
                   f"{', '.join(quote_path(f) for f in watcher['folders']) or 'nothing'}{away}")
    if not status.search_index_current:
        click.echo("note:   the search index is behind the catalog; it is rebuilt on the next query or index")


@click.command("engines")
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
    """The inference engines on this machine: how faithful and fast each is, and which one `auto` runs.

    For each engine: whether it is faithful to float32 Keras on the shipped check photos, its lowest
    embedding cosine, its images/s on a fixed batch and the seconds a new process takes to start it; then
    the engine `--runtime auto` picks for bulk work and for a one-off query, and why.
    """
    setup_logging()
    report = actions.engines(resolve_index_dir(index_dir), model, weights, threads, measure)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    machine = report["machine"]
    click.echo(f"machine: {machine['cpu']} ({machine['arch']}, {' '.join(machine['flags']) or 'no notable flags'}), "
               f"{report['threads']} threads")
    profile = report["profile"]
    if profile is None:
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


