"""Searching the index: by a picture on disk (`cbir query`), by uploaded bytes, by an indexed image's id,
and by word (`cbir find`); and tagging any picture (`cbir tags`).

Every picture search follows one rule (cbir.search.search_by_picture). A ``Warm`` keeps the model and the
search index between calls: a command makes a fresh one, the web server keeps one for its life.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cbir.errors import ImageNotFoundError, UsageError
from cbir.search import Searcher, Stopwatch, check_query_args, search_by_picture, words_to_tags
from cbir.tagging import find_page as find_tagged_page
from cbir.tagging import tag_images
from cbir.warm import Warm
from index_store.catalog import CatalogReader
from index_store.check import require_intact
from indexer.loader import read_file
from indexer.tags import load_vocabulary

MAX_K = 500  # the most hits a search returns in one answer


def query(index_dir: Path, image: str | os.PathLike[str], k: int = 10, *, exclude_self: bool = False,
          weights: str | None = None, model: str | None = None, runtime: str | None = None,
          tags: list[str] | None = None, stopwatch: Stopwatch | None = None, warm: Warm | None = None) -> list[dict]:
    """`cbir query IMAGE --json`: the k indexed images most like the picture at ``image``, best first."""
    lap = stopwatch.lap if stopwatch else (lambda phase: None)
    lap("start and imports")
    path = check_query_args(image, k)
    # An engine, model or weights named on the command line means: embed the picture with it.
    named = not (model is None and weights is None and runtime is None)
    warm = warm or Warm(model=model, weights=weights, runtime=runtime, work=None)
    with CatalogReader.open(index_dir) as reader:
        reader.require_images()
        require_intact(reader)
        allowed = reader.ids_tagged(words_to_tags(reader, tags)) if tags else None
        content = read_file(path)
        hits = search_by_picture(reader, warm, content.data, k, path=str(path), exclude_self=exclude_self,
                                 allowed=allowed, use_stored=not named, lap=lap,
                                 notes=stopwatch.notes if stopwatch else None)
        return [h.as_dict() for h in hits]


def query_bytes(index_dir: Path, data: bytes, k: int = 10, *, exclude_self: bool = False,
                tags: list[str] | None = None, warm: Warm | None = None, max_pixels: int | None = None) -> list[dict]:
    """`cbir query --json` for a picture given as bytes (an upload): a copy of an indexed file counts as it."""
    _check_k(k)
    warm = warm or Warm()
    with CatalogReader.open(index_dir) as reader:
        reader.require_images()
        require_intact(reader)
        allowed = reader.ids_tagged(words_to_tags(reader, tags)) if tags else None
        hits = search_by_picture(reader, warm, data, k, exclude_self=exclude_self, allowed=allowed,
                                 max_pixels=max_pixels)
        return [h.as_dict() for h in hits]


def query_id(index_dir: Path, image_id: int, k: int = 10, *, exclude_self: bool = False,
             tags: list[str] | None = None, warm: Warm | None = None) -> list[dict]:
    """More like an indexed image, from its stored vector (nothing is embedded), as `cbir query --json`."""
    _check_k(k)
    warm = warm or Warm()
    with CatalogReader.open(index_dir) as reader:
        row = reader.rows_by_ids([image_id]).get(image_id)
        if row is None:
            raise ImageNotFoundError(f"no indexed image has id {image_id}")
        require_intact(reader)
        allowed = reader.ids_tagged(words_to_tags(reader, tags)) if tags else None
        searcher = Searcher(reader, warm.search_index(reader))
        return [h.as_dict() for h in searcher.search(reader.vector(image_id), k, row, exclude_self, allowed)]


def query_ids(index_dir: Path, image_ids: list[int], k: int = 10, *, warm: Warm | None = None) -> list[dict]:
    """More like several indexed images at once: the direction of their stored vectors' mean, leaving the
    images themselves out, as `cbir query --json`."""
    _check_k(k)
    if not image_ids:
        raise UsageError("choose at least one image")
    warm = warm or Warm()
    with CatalogReader.open(index_dir) as reader:
        missing = sorted(set(image_ids) - set(reader.rows_by_ids(sorted(set(image_ids)))))
        if missing:
            raise ImageNotFoundError(f"no indexed image has id {missing[0]}")
        require_intact(reader)
        mean = np.mean([reader.vector(i) for i in sorted(set(image_ids))], axis=0)
        mean = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        searcher = Searcher(reader, warm.search_index(reader))
        hits = searcher.search(mean, k + len(set(image_ids)))
        return [h.as_dict() for h in hits if h.id not in set(image_ids)][:k]


def find_page(index_dir: Path, words: list[str], k: int | None = 10, taken: str | None = None,
              offset: int = 0) -> dict:
    """`cbir find WORD... [--taken WHEN] [--offset N] --json`, a page of indexed images tagged with every word (or
    taken at a place a word names), taken when asked, best first, with when and where each was taken:
    ``{"total", "offset", "images", "below_bar", "read_as", "tags_current", "terms"}``;
    ``below_bar`` holds the best hits too weak to show (path, score), so that an empty answer can say what came
    closest; ``read_as`` what each word was taken to mean (word -> [{tag, id, how}]); ``tags_current`` is false
    when the stored tags predate this cbir's vocabulary or rules (`cbir index` remakes them); ``terms`` the search
    terms the words make ("ice cream" is one, "dog cat" two: ``cbir.search.phrases``)."""
    page = find_tagged_page(index_dir, words, k, taken, offset)
    return {"total": page.total, "offset": offset, "images": [f.as_dict() for f in page.hits],
            "below_bar": [{"path": p, "score": round(s, 4)} for p, s in page.below],
            "read_as": {word: [{"tag": s.name, "id": s.id, "how": s.how} for s in senses]
                        for word, senses in page.read_as.items()},
            "tags_current": page.tags_current, "terms": page.terms}


def readings(page: dict) -> list[dict]:
    """The terms of a ``find_page`` answer that were read as something other than themselves, for a person:
    ``[{"word", "tags", "how"}]`` ("selfie" read as people, a broader match; "kitty" as domestic cat)."""
    out = []
    for word, senses in page["read_as"].items():
        names = list(dict.fromkeys(s["tag"] for s in senses))
        if set(names) != {word.lower()}:
            out.append({"word": word, "tags": names, "how": senses[0]["how"]})
    return out


def tags(paths: list[str | os.PathLike[str]], *, weights: str | None = None, model: str | None = None,
         runtime: str | None = None) -> list[dict]:
    """`cbir tags IMAGE... --json`: each picture's tags worth showing, best first, indexed or not, and every
    tag it has (``all_tags``: what `cbir find` searches)."""
    vocabulary = load_vocabulary()
    out = []
    for path, found, category in tag_images(paths, weights=weights, model=model, runtime=runtime):
        shown = {tag_id for tag_id, _ in vocabulary.shown([(t.id, t.score) for t in found], category)}
        out.append({"path": path, "tags": [t.as_dict() for t in found if t.id in shown],
                    "all_tags": [t.as_dict() for t in found]})
    return out


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K}, got {k}")
