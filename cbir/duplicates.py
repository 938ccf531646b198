"""`cbir duplicates`: groups of copies of the same photo among indexed images, the best copy first.

Levels:
- ``exact``: the same bytes (the catalog's content hash);
- ``near``: the same photo re-encoded, resized, cropped, rotated or lightly edited;
- ``similar``: also burst shots and the same scene a moment apart.

Candidate pairs come from the FAISS index (each image's nearest neighbours
above an embedding threshold), never from comparing all pairs. Each candidate
is then checked on the pictures themselves (indexer.structure: normalised
cross-correlation of grey thumbnails, allowing crops, then tile by tile at
twice that size), because embeddings put two different receipts, two beaches
or two pages of one web site as close as two copies. Verified pairs
join into groups. In each group the copy a person would keep comes first:
the preferred folder, then the largest, the least compressed, the sharpest,
the one no editor saved, the earliest taken, the oldest file. The thresholds
were chosen on half of the development groups and measured on the other half
(``python -m benchmarks.duplicates``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cbir.config import DUPLICATES_FOLDER
from cbir.errors import ImageDecodeError, UsageError
from cbir.moves.clean import CleanPlan, plan_move, root_of
from index_store.publish import load_search_index
from indexer.image_facts import ImageFacts, image_facts
from indexer.loader import read_file, thumbnail
from indexer.structure import align, detail_agreement

LEVELS = ("exact", "near", "similar")
# A pair is a copy when it meets all three of a rule: embedding cosine, thumbnail correlation, share of
# agreeing detail tiles. Near was chosen on half the development pairs (see the module's note); similar
# adds a rule for a scene that moved between two shots, and keeps every near pair.
NEAR_RULE = (0.75, 0.90, 0.8)
RULES = {"near": (NEAR_RULE,), "similar": (NEAR_RULE, (0.85, 0.60, 0.8))}
NEIGHBOURS = 10  # candidates per image from the search index
_BATCH = 64  # candidate pairs checked at once, in parallel
# Copies sit in the query's own or an adjacent IVF cell: on 10^5 vectors 4 cells found every pair 32 did,
# at a sixth of the time (benchmarks/duplicates.py --scale); 8 leaves a margin for real libraries.
NPROBE = 8
# What editing software writes into EXIF; a copy one of these saved is not the original.
EDITORS = ("gimp", "photoshop", "lightroom", "snapseed", "darktable", "rawtherapee", "affinity", "pixelmator",
           "picasa", "paint.net", "krita", "luminar", "capture one", "acdsee", "polarr", "vsco")


@dataclass
class Member:
    id: int
    path: str
    size: int
    hash: str
    mtime_ns: int
    facts: ImageFacts | None = None
    similarity: float = 1.0  # embedding cosine to the keeper
    structure: float = 1.0  # thumbnail correlation with the keeper (1: the same picture)
    detail: float = 1.0  # share of detail tiles that agree with the keeper's
    keep: bool = False

    @property
    def edited(self) -> bool:
        software = ((self.facts.software if self.facts else None) or "").lower()
        return any(name in software for name in EDITORS)

    def as_dict(self) -> dict:
        return {"path": self.path, "id": self.id, "role": "keep" if self.keep else "copy",
                "similarity": round(self.similarity, 4), "structure": round(self.structure, 4),
                "detail": round(self.detail, 4),
                **(self.facts.as_dict() if self.facts is not None else {}), "edited": self.edited}


@dataclass
class Group:
    members: list[Member]  # the keeper first
    reason: str = ""

    @property
    def keeper(self) -> Member:
        return self.members[0]

    def as_dict(self, number: int) -> dict:
        return {"group": number, "keeper": self.keeper.path, "reason": self.reason,
                "members": [m.as_dict() for m in self.members]}


@dataclass
class DuplicateReport:
    level: str
    groups: list[Group] = field(default_factory=list)
    images: int = 0  # indexed images in scope
    candidate_pairs: int = 0  # pairs the embedding proposed
    checked_pairs: int = 0  # of those, pairs the picture check looked at (not already joined through others)
    seconds: float = 0.0

    @property
    def extra_copies(self) -> int:
        return sum(len(g.members) - 1 for g in self.groups)

    def as_dict(self) -> dict:
        return {"level": self.level, "images": self.images, "candidate_pairs": self.candidate_pairs,
                "checked_pairs": self.checked_pairs,
                "groups": [g.as_dict(n) for n, g in enumerate(self.groups, 1)], "extra_copies": self.extra_copies,
                "seconds": round(self.seconds, 2)}


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def find_duplicates(catalog, level: str = "near", scope: list[str] | None = None, bases: list[str] | None = None,
                    prefer: list[str] | None = None, on_progress: Callable[[int], object] | None = None,
                    on_total: Callable[[int], object] | None = None) -> DuplicateReport:
    """Groups of duplicates among the images of ``catalog`` (a CatalogReader or the IndexStore) under ``scope``.

    Images already moved into a ``duplicates`` folder under any of ``bases`` (the indexed roots and a
    ``--dest``) are left out, so a second run finds nothing new.
    """
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    started = time.monotonic()
    set_aside = [os.path.join(b, DUPLICATES_FOLDER) for b in bases or []]

    def wanted(path: str) -> bool:
        return ((not scope or any(_under(path, s) for s in scope))
                and not any(_under(path, f) for f in set_aside))

    report = DuplicateReport(level)
    pairs = _exact_pairs(catalog, wanted)
    if level != "exact":
        rules = RULES[level]
        structure_min = min(rule[1] for rule in rules)
        candidates = _candidate_pairs(catalog, min(rule[0] for rule in rules), wanted)
        members = _rows(catalog, {i for pair in candidates for i in pair})
        if on_total:
            on_total(len({m.hash for m in members.values()}))  # what on_progress counts: pictures looked at
        _load_facts(members.values(), on_progress)
        todo = [(pair, score) for pair, score in candidates.items()
                if pair not in pairs and members[pair[0]].facts is not None and members[pair[1]].facts is not None]

        def verify(item: tuple[tuple[int, int], float]) -> bool:
            (a, b), cosine = item
            fa, fb = members[a].facts, members[b].facts
            assert fa is not None and fb is not None
            structure, detail = compare_pictures(fa, fb, structure_min)
            return any(cosine >= c and structure >= s and detail >= d for c, s, d in rules)

        # Most alike first, and a pair whose two images are already joined through others is not checked:
        # it cannot change the groups, and a burst of ten copies has 45 pairs but needs 9.
        todo.sort(key=lambda item: -item[1])
        joined = _UnionFind()
        for a, b in pairs:
            joined.union(a, b)
        with _workers() as pool:
            while todo:
                batch: list[tuple[tuple[int, int], float]] = []
                rest: list[tuple[tuple[int, int], float]] = []
                for item in todo:
                    (a, b), _ = item
                    if joined.find(a) == joined.find(b):
                        continue
                    (batch if len(batch) < _BATCH else rest).append(item)
                for (pair, score), same in zip(batch, pool.map(verify, batch), strict=True):
                    if same:
                        pairs[pair] = score
                        joined.union(*pair)
                report.checked_pairs += len(batch)
                todo = rest
        report.candidate_pairs = len(candidates)
    report.images = sum(1 for path in catalog.paths_under("/") if wanted(path))
    groups = components(pairs)
    rows = _rows(catalog, {i for g in groups for i in g})
    _load_facts([m for m in rows.values() if m.facts is None], None)
    for ids in groups:
        report.groups.append(_rank([rows[i] for i in ids if rows[i].facts is not None], catalog, prefer or []))
    report.groups = [g for g in report.groups if len(g.members) > 1]
    report.groups.sort(key=lambda g: g.keeper.path)
    report.seconds = time.monotonic() - started
    return report


def compare_pictures(a: ImageFacts, b: ImageFacts, structure_min: float = -1.0) -> tuple[float, float]:
    """(thumbnail correlation, share of agreeing detail tiles) of two pictures; the detail is only looked
    at (else 0.0) when the thumbnails reach ``structure_min``."""

    alignment = align(a.thumb, b.thumb)
    if alignment.score < structure_min:
        return alignment.score, 0.0
    return alignment.score, detail_agreement(a.detail, b.detail, a.thumb.shape, b.thumb.shape, alignment)


def _exact_pairs(catalog, wanted: Callable[[str], bool]) -> dict[tuple[int, int], float]:
    pairs: dict[tuple[int, int], float] = {}
    for ids in catalog.same_content_groups():
        rows = catalog.rows_by_ids(ids)
        kept = sorted(i for i in ids if i in rows and wanted(rows[i].path))
        for other in kept[1:]:
            pairs[(kept[0], other)] = 1.0
    return pairs


def _candidate_pairs(catalog, threshold: float, wanted: Callable[[str], bool]) -> dict[tuple[int, int], float]:
    """Pairs of ids whose embeddings are at least ``threshold`` alike: each image's nearest neighbours."""
    index = load_search_index(catalog, max_nprobe=NPROBE)
    k = min(NEIGHBOURS + 1, int(index.ntotal))
    in_scope: dict[int, bool] = {}
    pairs: dict[tuple[int, int], float] = {}
    for ids, vectors in catalog.iter_vectors():
        scores, neighbours = index.search(np.ascontiguousarray(vectors, np.float32), k)
        for i, row_scores, row_ids in zip(ids.tolist(), scores, neighbours, strict=True):
            for score, j in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                if j < 0 or j == i or score < threshold:
                    continue
                pairs[(min(i, j), max(i, j))] = max(score, pairs.get((min(i, j), max(i, j)), -1.0))
        rows = catalog.rows_by_ids(sorted({j for pair in pairs for j in pair if j not in in_scope}))
        in_scope.update({j: wanted(r.path) for j, r in rows.items()})
    return {p: s for p, s in pairs.items() if in_scope.get(p[0]) and in_scope.get(p[1])}


def _rows(catalog, ids: set[int]) -> dict[int, Member]:
    rows = catalog.rows_by_ids(sorted(ids))
    return {i: Member(i, r.path, r.size, r.hash, r.mtime_ns) for i, r in rows.items()}


def _load_facts(members, on_progress: Callable[[int], object] | None) -> None:

    members = list(members)
    first = {m.hash: m.path for m in reversed(members)}

    def facts(path: str) -> ImageFacts | None:
        try:
            return image_facts(path)
        except (ImageDecodeError, OSError):
            return None  # gone or unreadable since indexing: left out of its group

    by_hash: dict[str, ImageFacts | None] = {}
    with _workers() as pool:
        for content, found in zip(first, pool.map(facts, first.values()), strict=True):
            by_hash[content] = found
            if on_progress:
                on_progress(1)
    for member in members:
        member.facts = by_hash[member.hash]


def _workers():
    """Decoding and template matching release the GIL: one thread per core pays on both."""

    return ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        parent = self.parent
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: Hashable, b: Hashable) -> None:
        self.parent[self.find(a)] = self.find(b)


def components(pairs: Iterable[tuple[Any, Any]]) -> list[list]:
    """The connected components (of two or more, each sorted) of a graph given by its edges."""
    joined = _UnionFind()
    for a, b in pairs:
        joined.union(a, b)
    groups: dict[Hashable, list] = {}
    for x in list(joined.parent):
        groups.setdefault(joined.find(x), []).append(x)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def _rank(members: list[Member], catalog, prefer: list[str]) -> Group:
    """The group with the copy a person would keep first, and why it is that one."""

    preferred = {m.id: any(_under(m.path, p) for p in prefer) for m in members}
    def compare(a: Member, b: Member) -> int:
        return _compare(a, b, preferred)

    ordered = sorted(members, key=cmp_to_key(compare))
    keeper = ordered[0]
    keeper.keep = True
    for member in ordered[1:]:
        member.similarity = min(1.0, float(catalog.vector(keeper.id) @ catalog.vector(member.id)))
        assert keeper.facts is not None and member.facts is not None
        if member.hash != keeper.hash:
            member.structure, member.detail = compare_pictures(keeper.facts, member.facts)
    reason = _reason(keeper, ordered[1], preferred) if len(ordered) > 1 else ""
    if preferred[keeper.id] and not all(preferred.values()) and not reason.startswith("in the preferred"):
        reason = f"in the preferred folder, then {reason}"
    return Group(ordered, reason)


def _criteria(a: Member, b: Member, preferred: dict[int, bool]) -> list[tuple[str, int]]:
    """(criterion, -1 when ``a`` wins / 1 when ``b`` wins / 0) in the order a person weighs them."""
    fa, fb = a.facts, b.facts
    assert fa is not None and fb is not None  # members without facts are left out of groups
    pa, pb = fa.pixels, fb.pixels
    out = [("preferred", (preferred[b.id] - preferred[a.id]))]
    out.append(("largest", 0 if abs(pa - pb) <= 0.02 * max(pa, pb) else (-1 if pa > pb else 1)))
    # Compression compares like with like: a PNG saved from a JPEG is no better than the JPEG.
    qa, qb = (fa.quality, fb.quality) if fa.format == fb.format == "JPEG" else (0, 0)
    out.append(("least compressed", 0 if abs(qa - qb) < 5 else (-1 if qa > qb else 1)))
    sa, sb = fa.sharpness, fb.sharpness
    out.append(("sharpest", 0 if abs(sa - sb) <= 0.1 * max(sa, sb, 1e-9) else (-1 if sa > sb else 1)))
    out.append(("not edited", int(a.edited) - int(b.edited)))
    ta, tb = fa.taken_at, fb.taken_at
    out.append(("taken first", 0 if not ta or not tb or ta == tb else (-1 if ta < tb else 1)))
    out.append(("oldest file", 0 if a.mtime_ns == b.mtime_ns else (-1 if a.mtime_ns < b.mtime_ns else 1)))
    return out


def _compare(a: Member, b: Member, preferred: dict[int, bool]) -> int:
    for _, verdict in _criteria(a, b, preferred):
        if verdict:
            return verdict
    return -1 if a.path < b.path else 1


def _reason(keeper: Member, runner_up: Member, preferred: dict[int, bool]) -> str:
    fk, fr = keeper.facts, runner_up.facts
    assert fk is not None and fr is not None
    for name, verdict in _criteria(keeper, runner_up, preferred):
        if verdict:
            detail = {
                "preferred": "in the preferred folder",
                "largest": f"largest: {fk.width}x{fk.height} (next {fr.width}x{fr.height})",
                "least compressed": f"least compressed: quality {fk.quality} (next {fr.quality})",
                "sharpest": f"sharpest: {fk.sharpness:.0f} (next {fr.sharpness:.0f})",
                "not edited": f"not edited (the next was saved by {fr.software})",
                "taken first": f"taken first: {fk.taken_at}",
                "oldest file": "the oldest file",
            }[name]
            return detail
    return "identical copies: the first by path"


def plan_extras(report: DuplicateReport, catalog, roots: list[str], dest: str | None):
    """A move plan (as for clean) of every copy but the keeper into a ``duplicates`` folder."""

    plan = CleanPlan()
    taken: set[str] = set()
    problems: dict[str, str | None] = {}
    rows = catalog.rows_by_ids([m.id for g in report.groups for m in g.members[1:]])
    for group in report.groups:
        for member in group.members[1:]:
            row = rows.get(member.id)
            root = root_of(member.path, roots) if row is not None else None
            if row is None or root is None:
                plan.skipped.append((member.path, "outside the indexed folders, not moved"))
                continue
            plan_move(plan, row, root, dest, DUPLICATES_FOLDER, member.similarity, taken, problems)
    return plan


def contact_sheet(report: DuplicateReport, path: str, cell: int = 180) -> None:
    """A PNG of the groups, one row each: the keeper first (marked), with similarity and reason under each."""


    if not report.groups:
        raise UsageError("no duplicate groups to draw")
    columns = max(len(g.members) for g in report.groups)
    caption = 44
    sheet = Image.new("RGB", (columns * cell, len(report.groups) * (cell + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for row_no, group in enumerate(report.groups):
        for col, member in enumerate(group.members):
            x, y = col * cell, row_no * (cell + caption)
            try:
                thumb = thumbnail(read_file(member.path).data, cell - 8)
                sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            except (ImageDecodeError, OSError):
                draw.text((x + 8, y + cell // 2), "(unreadable)", fill="grey", font=font)
            if member.keep:
                draw.rectangle([x + 1, y + 1, x + cell - 2, y + cell - 2], outline=(0, 160, 0), width=4)
            label = ("KEEP: " + group.reason) if member.keep else (
                f"copy: sim {member.similarity:.3f}, match {member.structure:.2f}/{member.detail:.2f}")
            name = os.path.basename(member.path)
            draw.text((x + 4, y + cell + 2), f"{name[:28]}\n{label[:30]}\n{label[30:60]}", fill="black", font=font)
    sheet.save(path, "PNG")
