"""Searching by word and tagging any image: what `cbir find` and `cbir tags` compute (see indexer.tags)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.errors import IndexEmptyError, UnknownWordError, UsageError
from cbir.search import Hit, check_query_args, phrases, words_to_senses
from index_store.catalog import CatalogReader
from index_store.check import require_intact
from indexer.engines.load import load_embedder
from indexer.loader import load_image
from indexer.model import resolve_model
from indexer.tags import Sense, Tag, load_vocabulary, tags_current


@dataclass(frozen=True)
class Found(Hit):
    """A hit of a word search: the score is the tag's (for several words, the weakest word's; 1.0 when only
    a time or a place was asked for)."""

    tags: list[str] = field(default_factory=list)
    when: dict = field(default_factory=dict)  # taken_at, taken_source, camera, place...
    read_as: dict = field(default_factory=dict)  # word -> the sense of it this image matched: tag, id, how

    @property
    def judgement(self) -> str:
        return "tagged"

    def as_dict(self) -> dict:
        return {**super().as_dict(), "tags": self.tags, **self.when, "read_as": self.read_as}


@dataclass
class FoundPage:
    """A page of a word search: how many images match in all, the page's hits, the best three hits too weak to
    show (path, score), what each word was read as, whether the stored tags are this cbir's (else the next
    `cbir index` remakes them: a word new since then finds nothing yet), and the search's terms (``phrases``:
    "ice cream" is one)."""

    total: int
    hits: list[Found]
    below: list[tuple[str, float]]
    read_as: dict[str, list[Sense]]
    tags_current: bool
    terms: list[str]


# A hit of a word search is shown from this tag score on: on 128 judged top-10 hits of 15 words
# (benchmarks/tags_judged.json), 0.81 were right from 0.15 (where tags start), 0.83 from 0.25, and only one
# right hit scored below it. Below the bar a word's hits are guesses (a food photo at 0.16 for "dog").
FIND_BAR = 0.25


def find_page(index_dir: Path, words: list[str], k: int | None = 10, taken: str | None = None,
              offset: int = 0) -> FoundPage:
    """Indexed images whose tags match every word (a synonym, or anything under it), best first, ``k`` of them
    from ``offset`` on. A word the vocabulary lacks may name a place where photos were taken (a town or a
    country); ``taken`` keeps only images taken in a year, a month, a day or a range of them ("2023",
    "2023-06..2023-08"). Hits under ``FIND_BAR`` are not shown; the best three of them are the page's
    ``below``."""
    if k is not None and k < 1:
        raise UsageError(f"-k must be at least 1, got {k}")
    if offset < 0:
        raise UsageError(f"the offset must be 0 or more, got {offset}")
    with CatalogReader.open(index_dir) as catalog:
        catalog.require_images()
        require_intact(catalog)
        terms = phrases(catalog, words, places=True)
        if not terms and not taken:
            typed = " ".join(words).strip()
            raise UsageError(f"no word to find in {typed!r}" if typed else "give at least one word to find, or --taken")
        allowed: set[int] | None = None
        wanted: list[list[str]] = []  # each tag word's tag ids, resolved once
        senses: dict[str, list[Sense]] = {}
        for word in terms:
            try:
                senses[word] = words_to_senses(catalog, [word])[0]
                wanted.append(sorted({sense.id for sense in senses[word]}))
            except UnknownWordError:
                at = catalog.ids_at_place(word)
                if not at:
                    raise
                allowed = at if allowed is None else allowed & at
        if taken:
            start, end = taken_range(taken)
            within = catalog.ids_taken(start, end)
            allowed = within if allowed is None else allowed & within
        when: dict[int, dict] = {}
        below: list[tuple[str, float]] = []
        if wanted:
            if not catalog.has_tags():
                raise IndexEmptyError(f"index {index_dir} has no tags yet: run `cbir index` once to add them "
                                      "(nothing is embedded again)")
            if allowed is None:
                # SQLite counts and cuts the page: a word on all of 10^5 images is never listed whole.
                total = catalog.count_tagged(wanted, FIND_BAR)
                ranked = catalog.find_tagged(wanted, k, offset, at_least=FIND_BAR)
                weak = catalog.find_tagged(wanted, 3, below=FIND_BAR)
            else:
                everything = [(i, s) for i, s in catalog.find_tagged(wanted, None) if i in allowed]
                weak = [(i, s) for i, s in everything if s < FIND_BAR][:3]
                total, ranked = _page([(i, s) for i, s in everything if s >= FIND_BAR], k, offset)
            if weak:
                paths = catalog.rows_by_ids([i for i, _ in weak])
                below = [(paths[i].path, s) for i, s in weak if i in paths]
        else:
            when = catalog.when_of(sorted(allowed or []))
            newest = sorted(allowed or [], key=lambda i: when[i].get("taken_at") or "", reverse=True)
            total, ranked = _page([(i, 1.0) for i in newest], k, offset)
        rows = catalog.rows_by_ids([i for i, _ in ranked])
        tags = catalog.tags_of([i for i, _ in ranked])
        when = when or catalog.when_of([i for i, _ in ranked])
        vocabulary = load_vocabulary()
        hits = [Found(score, rows[i].path, i, rows[i].category, rows[i].category_probs,
                      tags=[vocabulary.name(t) for t, _ in vocabulary.shown(tags.get(i, []), rows[i].category)],
                      when=when.get(i, {}), read_as=_read_as(senses, dict(tags.get(i, []))))
                for i, score in ranked if i in rows]
        return FoundPage(total, hits, below, senses, tags_current(catalog.stored_tags_version(), catalog.model_id),
                         terms)


def _page(ranked: list[tuple[int, float]], k: int | None, offset: int) -> tuple[int, list[tuple[int, float]]]:
    """How many there are in all, and the ``k`` of them from ``offset`` on (all from there when None)."""
    return len(ranked), ranked[offset: offset + k] if k is not None else ranked[offset:]


def _read_as(senses: dict[str, list[Sense]], scores: dict[str, float]) -> dict[str, dict]:
    """For each word, the sense of it an image matched best (its highest-scoring tag among the word's)."""
    out = {}
    for word, options in senses.items():
        matched = [s for s in options if s.id in scores]
        if matched:
            best = max(matched, key=lambda s: scores[s.id])
            out[word] = {"tag": best.name, "id": best.id, "how": best.how}
    return out


def taken_range(spec: str) -> tuple[str, str]:
    """``--taken`` as [start, end) times: "2023", "2023-06", "2023-06-14", or two of them joined by "..";
    UsageError for anything else."""
    first, _, last = spec.partition("..")
    start = _bound(first.strip(), spec)
    end = _bound((last or first).strip(), spec, after=True)
    if end <= start:
        raise UsageError(f"--taken {spec!r} ends before it starts")
    return start, end


def _bound(part: str, spec: str, after: bool = False) -> str:
    try:
        if len(part) == 4:
            year = int(part)
            return f"{year + 1 if after else year:04d}-01-01"
        if len(part) == 7:
            day = datetime.date(int(part[:4]), int(part[5:7]), 1)
            if after:
                day = (day + datetime.timedelta(days=32)).replace(day=1)
            return day.isoformat()
        if len(part) == 10:
            day = datetime.date.fromisoformat(part)
            return (day + datetime.timedelta(days=1 if after else 0)).isoformat()
    except ValueError:
        pass
    raise UsageError(f"--taken wants a year, a month or a day (2023, 2023-06, 2023-06-14) or a range of them "
                     f"(2023-06..2023-08), not {spec!r}")


def tag_images(paths: list[str | os.PathLike[str]], *, weights: str | None = None, model: str | None = None,
               runtime: str | None = None) -> list[tuple[str, list[Tag], str | None]]:
    """(path, tags best first, category) for image files, indexed or not; the model loads once."""
    files = [check_query_args(p, 1) for p in paths]
    embedder = load_embedder(weights, resolve_model(model), runtime, bulk=len(files) > 8, work=len(files))
    out = []
    for path in files:
        pixels, _ = load_image(path)
        result = embedder.embed(pixels[None])
        categories = embedder.categories(result.category_probs) or [(None, None)]
        norms = result.norms if result.norms is not None else np.full(1, np.nan, np.float32)
        out.append((str(path), embedder.tagger.tags(result.vectors, norms, [categories[0][0]],
                                                    [categories[0][1]])[0], categories[0][0]))
    return out
