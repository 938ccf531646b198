"""`cbir query`, `cbir find` and `cbir tags` (parse and print; the jobs are in cbir.actions.search)."""

from __future__ import annotations

import json

import click

from cbir.actions import search
from cbir.cli.common import (
    echo_err,
    index_option,
    json_option,
    model_option,
    null_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.cli.output import emit
from cbir.config import resolve_index_dir
from cbir.search import Stopwatch, check_query_args, no_close_match
from cbir.text import quote_path, shortened

SHOWN_TAGS = 12


@click.command("query")
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
    stopwatch = Stopwatch() if timings else None
    setup_logging()
    check_query_args(image, k)
    hits = search.query(resolve_index_dir(index_dir), image, k, exclude_self=exclude_self, weights=weights,
                        model=model, runtime=runtime, stopwatch=stopwatch, tags=list(tags))
    if as_json:
        click.echo(json.dumps(hits, indent=2))
    else:
        for hit in hits:
            emit([f"{hit['score']:.4f}"], [hit["path"]], null)
    note = no_close_match(hits)
    if note:
        echo_err(f"cbir: {note}")
    if stopwatch:
        for phase, seconds in stopwatch.phases.items():
            echo_err(f"cbir: {seconds * 1e3:8.1f} ms  {phase}")
        echo_err(f"cbir: {sum(stopwatch.phases.values()) * 1e3:8.1f} ms  in all, from the command starting")
        for line in stopwatch.notes:
            echo_err(f"cbir: {line}")


@click.command("find")
@click.argument("words", nargs=-1)
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many images to show.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many of the best first: the next page is --offset K.")
@click.option("--taken", default=None, metavar="WHEN",
              help="Only images taken then: a year, a month or a day (2023, 2023-06, 2023-06-14), or a range of "
                   "them (2023-06..2023-08). EXIF's date, else the file's time.")
@index_option
@json_option
@null_option
def find_cmd(words: tuple[str, ...], k: int, offset: int, taken: str | None, index_dir: str | None,
             as_json: bool, null: bool) -> None:
    """Print indexed images tagged with every one of WORDS, best first, as score<TAB>path.

    A word matches its synonyms and everything under it: `cbir find dog` finds every breed, `cbir find
    animal` every animal; category names (food, screenshot, other...) work too. Tags come from the
    ImageNet classes the model sees and WordNet; see `cbir tags IMAGE`. Words that name one thing together
    are one term (`cbir find golden retriever`, `cbir find ice cream`). A word may also be a place photos
    were taken (`cbir find paris`, from their GPS position), and --taken keeps a time span.
    """
    setup_logging()
    page = search.find_page(resolve_index_dir(index_dir), list(words), k, taken, offset)
    found = page["images"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        for hit in found:
            emit([f"{hit['score']:.4f}"], [hit["path"]], null)
    what = " and ".join(repr(w) for w in page["terms"]) or "anything"
    if page["terms"] and not page["tags_current"]:
        echo_err("cbir: these tags predate this cbir's vocabulary and rules: `cbir index` remakes them from the "
                 "stored vectors (nothing is embedded again); until then, words are found by the old ones")
    for reading in search.readings(page):
        echo_err(f"cbir: {reading['word']!r} read as {shortened(', '.join(reading['tags']), 80)} "
                 f"({shortened(reading['how'], 80)})")
    if not found:
        closest = "; ".join(f"{quote_path(b['path'])} ({b['score']:.2f})" for b in page["below_bar"])
        echo_err(f"cbir: no indexed image is tagged {what}" + (f" taken {taken}" if taken else "")
                 + (f" past the first {page['total']}" if page["total"] else "")
                 + (f"; the closest were below the bar: {closest}" if closest and not page["total"] else ""))
    elif page["total"] > offset + len(found) or offset:
        echo_err(f"cbir: {offset + 1}-{offset + len(found)} of {page['total']} images tagged {what}"
                 + (f"; the next: --offset {offset + len(found)}" if page["total"] > offset + len(found) else ""))


@click.command("tags")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@model_option
@weights_option
@runtime_option
@json_option
@null_option
def tags_cmd(images: tuple[str, ...], model: str | None, weights: str | None, runtime: str | None,
             as_json: bool, null: bool) -> None:
    """Print hashtags for each image, indexed or not, as `#tabby #cat #animal<TAB>path` lines.

    The most specific tags come first among equally likely ones; --json gives every tag with its
    score (the probability that the image shows one of the things the tag covers).
    """
    setup_logging()
    results = search.tags(list(images), weights=weights, model=model, runtime=runtime)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for result in results:
        emit([" ".join("#" + t["tag"].replace(" ", "_") for t in result["tags"][:SHOWN_TAGS])], [result["path"]],
             null)
