"""The tags and find commands (parse and print only; the work is in cbir.tagging)."""

from __future__ import annotations

import json

import click

from cbir.cli_common import (
    echo_err,
    index_option,
    json_option,
    model_option,
    null_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.cli_output import emit

SHOWN_TAGS = 12


@click.command("find")
@click.argument("words", nargs=-1, required=True)
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many images to show.")
@index_option
@json_option
@null_option
def find_cmd(words: tuple[str, ...], k: int, index_dir: str | None, as_json: bool, null: bool) -> None:
    """Print indexed images tagged with every one of WORDS, best first, as score<TAB>path.

    A word matches its synonyms and everything under it: `cbir find dog` finds every breed, `cbir find
    animal` every animal; category names (food, screenshot, other...) work too. Tags come from the
    ImageNet classes the model sees and WordNet; see `cbir tags IMAGE`.
    """
    from cbir.config import resolve_index_dir
    from cbir.tagging import find

    setup_logging()
    found = find(resolve_index_dir(index_dir), list(words), k)
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in found], indent=2))
    else:
        for hit in found:
            emit([f"{hit.score:.4f}"], [hit.path], null)
    if not found:
        echo_err(f"cbir: no indexed image is tagged {' and '.join(repr(w) for w in words)}")


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
    from cbir.tagging import tag_images

    setup_logging()
    results = tag_images(list(images), weights=weights, model=model, runtime=runtime)
    if as_json:
        click.echo(json.dumps([{"path": path, "tags": [t.as_dict() for t in tags]} for path, tags in results],
                              indent=2))
        return
    for path, tags in results:
        emit([" ".join("#" + t.name.replace(" ", "_") for t in tags[:SHOWN_TAGS])], [path], null)
