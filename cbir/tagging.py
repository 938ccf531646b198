"""Searching by word and tagging any image: what `cbir find` and `cbir tags` compute (see indexer.tags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.errors import IndexEmptyError, UsageError
from cbir.search import Hit, check_query_args, words_to_tags
from index_store.catalog import CatalogReader
from index_store.check import require_intact
from indexer.engines.load import load_embedder
from indexer.loader import load_image
from indexer.model import resolve_model
from indexer.tags import Tag, load_vocabulary


@dataclass(frozen=True)
class Found(Hit):
    """A hit of a word search: the score is the tag's (for several words, the weakest word's)."""

    tags: list[str] = field(default_factory=list)

    @property
    def judgement(self) -> str:
        return "tagged"

    def as_dict(self) -> dict:
        return {**super().as_dict(), "tags": self.tags}


def find(index_dir: Path, words: list[str], k: int | None = 10) -> list[Found]:
    """Indexed images whose tags match every word (a synonym, or anything under it), best first."""
    if k is not None and k < 1:
        raise UsageError(f"-k must be at least 1, got {k}")
    with CatalogReader.open(index_dir) as catalog:
        catalog.require_images()
        require_intact(catalog)
        wanted = words_to_tags(catalog, words)
        if not catalog.has_tags():
            raise IndexEmptyError(f"index {index_dir} has no tags yet: run `cbir index` once to add them "
                                  "(nothing is embedded again)")
        ranked = catalog.find_tagged(wanted, k)
        rows = catalog.rows_by_ids([i for i, _ in ranked])
        tags = catalog.tags_of([i for i, _ in ranked])
        vocabulary = load_vocabulary()
        return [Found(score, rows[i].path, i, rows[i].category, rows[i].category_probs,
                      tags=[vocabulary.name(t) for t, _ in tags[i]])
                for i, score in ranked if i in rows]


def tag_images(paths: list[str | os.PathLike[str]], *, weights: str | None = None, model: str | None = None,
               runtime: str | None = None) -> list[tuple[str, list[Tag]]]:
    """(path, tags best first) for image files, indexed or not; the model loads once."""
    files = [check_query_args(p, 1) for p in paths]
    embedder = load_embedder(weights, resolve_model(model), runtime, bulk=len(files) > 8, work=len(files))
    out = []
    for path in files:
        pixels, _ = load_image(path)
        result = embedder.embed(pixels[None])
        categories = embedder.categories(result.category_probs) or [(None, None)]
        norms = result.norms if result.norms is not None else np.full(1, np.nan, np.float32)
        out.append((str(path), embedder.tagger.tags(result.vectors, norms, [categories[0][0]],
                                                    [categories[0][1]])[0]))
    return out
