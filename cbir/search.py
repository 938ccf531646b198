"""Query the index with an image: the k most similar indexed images, best first, each with a judgement.

The judgement says what a score means, from thresholds measured on real pairs of the development
photos with the ImageNet trunk (``python -m benchmarks.match_thresholds``): ``match`` at
``MATCH_SCORE`` and above (90% of pairs of near-duplicates, the same photo re-encoded, resized or
edited, score there, and 1% of pairs of different photos of the same kind of food), ``related`` at
``RELATED_SCORE`` and above (where a pair is about as likely to show the same kind of thing as not:
44% of same-group food pairs and 4% of different-group ones score above it), else ``unrelated``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import ImageNotFoundError, UsageError
from cbir.warm import Warm
from index_store.catalog import CatalogReader
from index_store.faiss_index import search_within
from index_store.hashing import content_hash
from index_store.publish import load_search_index
from indexer.loader import decode
from indexer.tags import Sense, load_vocabulary

MATCH_SCORE = 0.80
RELATED_SCORE = 0.55


def judge(score: float) -> str:
    """``match``, ``related`` or ``unrelated`` for a cosine score (see the module's note)."""
    return "match" if score >= MATCH_SCORE else "related" if score >= RELATED_SCORE else "unrelated"


@dataclass(frozen=True)
class Hit:
    score: float
    path: str
    id: int
    category: str | None = None
    category_probs: dict[str, float] | None = None
    is_query: bool = False  # the query image itself, found in the index

    @property
    def judgement(self) -> str:
        return judge(self.score)

    def as_dict(self) -> dict:
        return {"score": round(self.score, 6), "judgement": self.judgement, "path": self.path, "id": self.id,
                "category": self.category, "category_probs": self.category_probs, "is_query": self.is_query}


def no_close_match(hits: list[dict]) -> str | None:
    """The note for a query whose best hit (other than itself) is unrelated, else None (hits as --json has them)."""
    others = [h for h in hits if not h["is_query"]]
    if not others or others[0]["judgement"] != "unrelated":
        return None
    return (f"no close match in the index: best score {others[0]['score']:.2f}; similar photos usually score "
            f"above {RELATED_SCORE:.2f}")


def check_query_args(image: str | os.PathLike[str], k: int) -> Path:
    """Cheap argument checks done before any model is loaded."""
    if k < 1:
        raise UsageError(f"-k must be at least 1, got {k}")
    path = Path(image).expanduser()
    if not path.exists():
        raise ImageNotFoundError(f"query image {path} does not exist")
    if not path.is_file():
        raise ImageNotFoundError(f"query image {path} is not a file")
    return path.absolute()


class Stopwatch:
    """Seconds spent per phase of a command, for `--timings`."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.notes: list[str] = []  # what else `--timings` says: which engine ran, and why
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now


class Searcher:
    """An open index and its FAISS search structure; answers vector queries warm."""

    def __init__(self, reader, index=None) -> None:
        self.reader = reader
        self.index = index if index is not None else load_search_index(reader)

    def search(self, vector, k: int, own=None, exclude_self: bool = False,
               allowed: set[int] | None = None) -> list[Hit]:
        """The k best hits for one unit vector; ``own`` is the query's own catalog row, if indexed.

        With ``allowed``, only those ids can be hits (a tag filter), searched inside FAISS.
        """
        if allowed is not None and own is not None and own.id not in allowed:
            own = None
        fetch = min(self.index.ntotal, k + (1 if own else 0))
        if allowed is not None:
            scores, ids = self._search_within(vector, fetch, allowed)
        else:
            scores, ids = self.index.search(vector.reshape(1, -1), fetch)
        # Cosines of float16-stored unit vectors can stray just past 1; a score is a cosine, so clamp it.
        pairs = [(min(1.0, max(-1.0, float(s))), int(i)) for s, i in zip(scores[0], ids[0], strict=True)
                 if i >= 0 and (not own or i != own.id)]
        if own is not None and not exclude_self:
            # The query's own file is in the index: identical content scores exactly 1.
            pairs.insert(0, (1.0, own.id))
        pairs = pairs[:k]
        rows = self.reader.rows_by_ids([i for _, i in pairs])
        return [
            Hit(score, rows[i].path, i, rows[i].category, rows[i].category_probs,
                is_query=own is not None and i == own.id)
            for score, i in pairs if i in rows
        ]

    def _search_within(self, vector, fetch: int, allowed: set[int]):

        return search_within(self.index, vector.reshape(1, -1), fetch, allowed)


LONGEST_PHRASE = 4  # words in one search term: "golden retriever", "screen capture", "rio de janeiro"


_TERM_BREAKS = re.compile(r"[,;]")  # "dog, food", as the search box's placeholder writes it
_WORD_EDGES = "#\"'\u201c\u201d\u2018\u2019!?()[]{}"  # a hashtag as `cbir tags` prints it, quotes, a closing mark
_POSSESSIVE = re.compile("['\u2019]s$")


def phrases(reader, words: list[str], places: bool = False) -> list[str]:
    """The search terms in ``words``: split at commas and spaces, each word without a leading ``#``, quotes or
    a possessive ``'s``; then, from the left, the longest run of words the vocabulary can read (with ``places``,
    or that names a place photos were taken) as one term, else one word. "ice cream" is one thing, not ice and
    cream; "dog cat" and "dog, cat" are two. The web gives one string (its search box, a tag's link), the command
    line several arguments, quoted or not: both mean the same search."""
    vocabulary = load_vocabulary()
    categories = reader.category_names() if reader is not None else []
    terms = []
    for group in _TERM_BREAKS.split(" ".join(words)):
        tokens = [t for t in (_POSSESSIVE.sub("", w.strip(_WORD_EDGES)).strip(_WORD_EDGES) for w in group.split())
                  if t]
        start = 0
        while start < len(tokens):
            end = start + 1
            for longer in range(min(len(tokens), start + LONGEST_PHRASE), start + 1, -1):
                phrase = " ".join(tokens[start:longer])
                if vocabulary.read(phrase, categories) or (places and reader is not None
                                                           and reader.ids_at_place(phrase)):
                    end = longer
                    break
            terms.append(" ".join(tokens[start:end]))
            start = end
    return terms


def words_to_tags(reader, words: list[str]) -> list[list[str]]:
    """Each search term of ``words`` (``phrases``) as the tag ids it means; UnknownWordError (with suggestions)
    for a term the vocabulary lacks."""
    return [sorted({sense.id for sense in senses}) for senses in words_to_senses(reader, phrases(reader, words))]


def words_to_senses(reader, words: list[str]) -> list[list[Sense]]:
    """Each word as what it is read as (``indexer.tags.Vocabulary.senses``), with the catalog's categories."""
    if not words:
        raise UsageError("give at least one word to find")
    vocabulary = load_vocabulary()
    categories = reader.category_names() if reader is not None else []
    return [vocabulary.senses(word, categories) for word in words]


def search_by_picture(reader: CatalogReader, warm: Warm, data: bytes, k: int, *, path: str | None = None,
                      exclude_self: bool = False, allowed: set[int] | None = None, use_stored: bool = True,
                      max_pixels: int | None = None, lap: Callable[[str], object] = lambda phase: None,
                      notes: list[str] | None = None) -> list[Hit]:
    """The one rule for a query by picture, from the command line (``path``) or an upload (no path).

    When these very bytes are indexed (and ``use_stored``: no other model or engine was asked for), their
    stored vector is the model's answer, so a photo and its copies score exactly alike whichever engine
    indexed them. The query's own row is the one at ``path`` with these bytes, or for an upload the first
    row with them; it comes first with score 1 unless ``exclude_self``. ``max_pixels`` bounds an upload:
    its picture is decoded (and so checked) even when its bytes are indexed.
    """
    digest = content_hash(data)
    twins = reader.rows_by_hash(digest) if use_stored else []
    pixels = decode(data, max_pixels=max_pixels) if max_pixels is not None else None
    if twins:
        vector = reader.vector(twins[0].id)
        lap("read the image and find its stored vector")
        if notes is not None:
            notes.append("engine: none ran; these bytes are indexed, so their stored vector was used")
    else:
        pixels = pixels if pixels is not None else decode(data)
        lap("read and decode the image")
        embedder = warm.embedder(reader)
        lap(f"load the model ({embedder.runtime})")
        if notes is not None:
            notes.append(f"engine: {embedder.runtime}: {embedder.choice}")
        vector = warm.embed_one(reader, pixels)
        lap("embed")
    searcher = Searcher(reader, warm.search_index(reader))
    lap("load the search index")
    if path is not None:
        own = reader.row_by_path(path)
        own = own if own is not None and own.hash == digest else None  # a changed file's vector is stale
    else:
        own = twins[0] if twins else None
    hits = searcher.search(vector, k, own, exclude_self, allowed)
    lap("search and look up paths")
    return hits
