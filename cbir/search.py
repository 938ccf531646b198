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
import time
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import ImageNotFoundError, UsageError, mixed_models

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


def no_close_match(hits: list[Hit]) -> str | None:
    """The note for a query whose best hit (other than itself) is unrelated, else None."""
    others = [h for h in hits if not h.is_query]
    if not others or others[0].judgement != "unrelated":
        return None
    return (f"no close match in the index: best score {others[0].score:.2f}; similar photos usually score "
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
        self.index = index if index is not None else reader.load_faiss()

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
        from index_store.faiss_index import search_within

        return search_within(self.index, vector.reshape(1, -1), fetch, allowed)


def check_trunk(reader, embedder) -> None:
    """Refuse to search an index with vectors of another network (a head's categories do not matter here)."""
    from index_store.catalog import trunk_of

    if trunk_of(reader.model_id or "") != embedder.trunk_id:
        raise mixed_models(reader.index_dir, f"{reader.model_ref or reader.model_id} ({reader.model_id})",
                           f"{embedder.model.ref} ({embedder.model_id})")


def query(
    index_dir: Path,
    image: str | os.PathLike[str],
    k: int = 10,
    *,
    exclude_self: bool = False,
    weights: str | os.PathLike[str] | None = None,
    model: str | None = None,
    runtime: str | None = None,
    stopwatch: Stopwatch | None = None,
    tags: list[str] | None = None,
) -> list[Hit]:
    from index_store import IndexReader
    from indexer.engines.load import load_embedder
    from indexer.loader import decode, read_file
    from indexer.model import resolve_model

    lap = stopwatch.lap if stopwatch else (lambda phase: None)
    lap("start and imports")
    path = check_query_args(image, k)
    reader = IndexReader.open(index_dir)
    try:
        reader.require_images()
        allowed = None
        if tags:
            from cbir.tagging import words_to_tags

            allowed = reader.ids_tagged(words_to_tags(reader, tags))
        content = read_file(path)
        # An engine, model or weights named on the command line means: embed the picture with it.
        default = model is None and weights is None and runtime is None
        twins = reader.rows_by_hash(content.digest) if default else []
        if twins:
            # These very bytes are indexed: their stored vector is what the index's model made of them,
            # so the photo and its copies score exactly alike, whichever engine indexed them.
            vector = reader.vector(twins[0].id)
            lap("read the image and find its stored vector")
            if stopwatch:
                stopwatch.notes.append("engine: none ran; these bytes are indexed, so their stored vector was used")
        else:
            pixels = decode(content.data)
            lap("read and decode the image")
            embedder = load_embedder(weights, resolve_model(model, reader.model_ref), runtime, bulk=False)
            check_trunk(reader, embedder)
            lap(f"load the model ({embedder.runtime})")
            if stopwatch:
                stopwatch.notes.append(f"engine: {embedder.runtime}: {embedder.choice}")
            vector = embedder.embed(pixels[None]).vectors[0]
            lap("embed")
        searcher = Searcher(reader)
        lap("load the search index")
        own = reader.row_by_path(str(path))
        if own is not None and own.hash != content.digest:
            own = None  # the file changed since it was indexed; its stored vector is stale
        hits = searcher.search(vector, k, own, exclude_self, allowed)
        lap("search and look up paths")
        return hits
    finally:
        reader.close()
