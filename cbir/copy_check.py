"""Are two indexed pictures copies of one photo? The pixel checks behind `cbir duplicates`, on stored facts.

Each candidate pair (two images whose embeddings are alike) is looked at
through the facts indexing stored for each content (indexer.image_facts), so
a scan decodes no file, except for images indexed before facts were stored.
The cheapest look runs first and most pairs stop there: the frame signatures'
dot product, computed for thousands of pairs at once; then the crop search;
then the tiles; then, for two sparse pictures (pages, screenshots), the tiles
up close. A ``Rule`` says what a pair must reach at each look; the rules were
chosen on half of the development groups and measured on the other half
(``python -m benchmarks.duplicates``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from cbir.errors import ImageDecodeError
from indexer.image_facts import FACTS_VERSION, ImageFacts, decode_facts, image_facts, stored_signature
from indexer.structure import Alignment, align, frame_scores, frame_signature, refine, tile_agreement, tone_normalised

# Tiles at the detail size (longest side 192): 32 pixels, each free to shift by 3 to absorb the placement's
# error, agreeing from a correlation of 0.7. Up close (384): 16 pixels, shifts of 4, agreeing from 0.9.
DETAIL_TILES = (32, 3, 0.7)
FINE_TILES = (16, 4, 0.9)


@dataclass(frozen=True)
class Comparison:
    """What the looks found: thumbnail correlation (1: the same picture), the share of detail tiles that
    agree, and the share of close-up tiles that agree (None unless both pictures are sparse)."""

    structure: float
    detail: float = 0.0
    fine: float | None = None


@dataclass(frozen=True)
class Rule:
    """What a copy reaches: embedding cosine, thumbnail correlation, share of agreeing detail tiles, and
    share of agreeing close-up tiles when both pictures are sparse (None: not looked at)."""

    cosine: float
    structure: float
    detail: float
    fine: float | None = None

    def passes(self, cosine: float, found: Comparison) -> bool:
        return (cosine >= self.cosine and found.structure >= self.structure and found.detail >= self.detail
                and (self.fine is None or found.fine is None or found.fine >= self.fine))


@dataclass
class Picture:
    """One content's facts, with what the checks derive from them once."""

    facts: ImageFacts
    normalised: np.ndarray  # the tone-normalised thumbnail, for the crop search

    @classmethod
    def of(cls, facts: ImageFacts) -> Picture:
        return cls(facts, tone_normalised(facts.thumb))


def compare(a: Picture, b: Picture, frame: float | None = None, rules: Iterable[Rule] = (),
            cosine: float = 1.0) -> Comparison:
    """How alike two pictures are, looking no further than needed: the same framing, then one inside the
    other (a crop), then ``b`` turned or mirrored (a copy saved sideways, or flipped). With rules, it stops
    as soon as one passes; without (for reports), it returns the best look but for the close-up."""
    rules = tuple(rules)
    if frame is None:
        frame = float(a.facts.signature @ b.facts.signature)
    structure_min = min((r.structure for r in rules), default=-1.0)
    best = Comparison(frame)
    for b_placed, placed in placements(a, b, frame, structure_min if rules else 0.6):
        found = _tiles(a, b_placed, placed, rules)
        if any(r.passes(cosine, found) for r in rules):
            return found
        if (found.detail, found.structure) > (best.detail, best.structure):
            best = found
        if not rules and found.structure >= 0.97:
            break
    return best


def placements(a: Picture, b: Picture, frame: float, enough: float) -> Iterator[tuple[Picture, Alignment]]:
    """Ways ``b`` may sit over ``a``, each only looked for when the ones before did not settle it."""
    if frame >= enough:
        yield b, Alignment(frame)
    if frame >= 0.97:
        return
    placed = align(a.normalised, b.normalised, same_frame=frame)
    if placed.box is not None and placed.score >= enough:
        yield b, refine(a.facts.detail, b.facts.detail, a.facts.thumb.shape, b.facts.thumb.shape, placed)
    if max(frame, placed.score) >= enough:
        return
    for turn in range(1, 8):
        turned = _turned(b.normalised, turn)
        score = float(a.facts.signature @ frame_signature(turned))
        if score >= enough:
            yield _turned_picture(b, turn, turned), Alignment(score)


def _turned(image: np.ndarray, turn: int) -> np.ndarray:
    """One of the 7 other orientations of ``image``: quarter turns, each of them mirrored or not."""
    return np.ascontiguousarray(np.rot90(image[:, ::-1] if turn >= 4 else image, turn % 4))


def _turned_picture(p: Picture, turn: int, normalised: np.ndarray) -> Picture:
    facts = p.facts
    return Picture(replace(facts, thumb=_turned(facts.thumb, turn), detail=_turned(facts.detail, turn),
                           fine=None if facts.fine is None else _turned(facts.fine, turn),
                           signature=frame_signature(normalised)), normalised)


def _tiles(a: Picture, b: Picture, placed: Alignment, rules: tuple[Rule, ...]) -> Comparison:
    fa, fb = a.facts, b.facts
    detail = tile_agreement(fa.detail, fb.detail, fa.thumb.shape, fb.thumb.shape, placed, *DETAIL_TILES).share
    fine = None
    close_up = any(r.fine is not None and detail >= r.detail for r in rules)
    if fa.fine is not None and fb.fine is not None and close_up:
        fine = tile_agreement(fa.fine, fb.fine, fa.thumb.shape, fb.thumb.shape, placed, *FINE_TILES).share
    return Comparison(placed.score, detail, fine)


class Pictures:
    """Facts of indexed images by id: read from the catalog, or decoded from the file for images indexed
    before facts were stored (None when it cannot be read). At most ``capacity`` are kept decoded."""

    def __init__(self, catalog, hashes: dict[int, str], paths: dict[int, str], capacity: int = 2048) -> None:
        self.catalog = catalog
        self.hashes = hashes
        self.paths = paths
        self.capacity = capacity
        self._decoded: OrderedDict[str, Picture | None] = OrderedDict()
        self._from_files: dict[str, ImageFacts | None] = {}  # facts the catalog did not have, by hash
        self._blobs: dict[str, bytes] = {}  # stored facts read for their signatures and not decoded yet

    def signatures(self, ids: list[int], pool: ThreadPoolExecutor) -> dict[int, np.ndarray]:
        """Frame signatures (float32) of ``ids`` that have facts; the stored ones without decoding."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 2048):
            part = ids[start: start + 2048]
            blobs = self.catalog.facts_blobs([self.hashes[i] for i in part], FACTS_VERSION)
            self._blobs.update(blobs)  # read once: ``load`` decodes these without reading them again
            missing = sorted({self.hashes[i] for i in part if self.hashes[i] not in blobs}
                             - set(self._from_files))
            first_path = {self.hashes[i]: self.paths[i] for i in reversed(part)}
            for digest, facts in zip(missing, pool.map(_read_facts, [first_path[h] for h in missing]),
                                     strict=True):
                self._from_files[digest] = facts
            for i in part:
                blob = blobs.get(self.hashes[i])
                if blob is not None:
                    out[i] = stored_signature(blob).astype(np.float32)
                elif (facts := self._from_files.get(self.hashes[i])) is not None:
                    out[i] = facts.signature
        return out

    def load(self, ids: Iterable[int], pool: ThreadPoolExecutor) -> None:
        """Decode the pictures of ``ids`` not yet decoded, in parallel."""
        wanted = list(dict.fromkeys(self.hashes[i] for i in ids if self.hashes[i] not in self._decoded))
        blobs = self._stored([h for h in wanted if h not in self._from_files])

        def picture(digest: str) -> Picture | None:
            blob = blobs.get(digest)
            facts = decode_facts(blob) if blob is not None else self._from_files.get(digest)
            return Picture.of(facts) if facts is not None else None

        for digest, found in zip(wanted, pool.map(picture, wanted), strict=True):
            self._decoded[digest] = found
        while len(self._decoded) > max(self.capacity, len(wanted)):
            self._decoded.popitem(last=False)

    def get(self, image_id: int) -> Picture | None:
        digest = self.hashes[image_id]
        if digest not in self._decoded:
            blobs = self._stored([digest])
            facts = decode_facts(blobs[digest]) if digest in blobs else self._file_facts(image_id)
            self._decoded[digest] = Picture.of(facts) if facts is not None else None
        self._decoded.move_to_end(digest)
        return self._decoded[digest]

    def _stored(self, digests: list[str]) -> dict[str, bytes]:
        """The stored facts of ``digests``: those ``signatures`` already read, the rest from the catalog."""
        found = {d: self._blobs.pop(d) for d in digests if d in self._blobs}
        rest = [d for d in digests if d not in found]
        if rest:
            found.update(self.catalog.facts_blobs(rest, FACTS_VERSION))
        return found

    def _file_facts(self, image_id: int) -> ImageFacts | None:
        digest = self.hashes[image_id]
        if digest not in self._from_files:
            self._from_files[digest] = _read_facts(self.paths[image_id])
        return self._from_files[digest]


def _read_facts(path: str) -> ImageFacts | None:
    try:
        return image_facts(path)
    except (ImageDecodeError, OSError):
        return None  # gone or unreadable since indexing: left out of its group


def workers() -> ThreadPoolExecutor:
    """The looks are OpenCV and numpy calls that release the GIL: one thread per core pays."""
    return ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="cbir-dup")


def frame_scores_of(pairs: list[tuple[int, int]], signatures: dict[int, np.ndarray]) -> np.ndarray:
    """The frame score of every pair at once (-1 for a pair whose picture has no facts)."""
    out = np.full(len(pairs), -1.0, np.float32)
    for start in range(0, len(pairs), 8192):
        part = pairs[start: start + 8192]
        known = [k for k, (a, b) in enumerate(part) if a in signatures and b in signatures]
        if known:
            a = np.stack([signatures[part[k][0]] for k in known])
            b = np.stack([signatures[part[k][1]] for k in known])
            out[start + np.asarray(known)] = frame_scores(a, b)
    return out
