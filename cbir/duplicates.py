"""`cbir duplicates`: groups of copies of the same photo among indexed images, the best copy first.

Levels:
- ``exact``: the same bytes (the catalog's content hash);
- ``near``: the same photo re-encoded, resized, cropped, rotated, tone-mapped, recoloured or watermarked;
- ``similar``: also burst shots and the same scene a moment apart.

Candidate pairs come from the FAISS index (each image's nearest neighbours
above an embedding threshold), never from comparing all pairs. Each candidate
is then checked on the pictures themselves (cbir.copy_check, on the facts
indexing stored), because embeddings put two different receipts, two beaches
or two pages of one web site as close as two copies. The candidate graph
falls apart into independent parts; they are checked a batch of parts at a
time, and each part's groups are final (and reported through ``on_group``)
as soon as its pairs are checked, so the first groups come long before the
scan ends. In each group the copy a person would keep comes first: the
preferred folder, then the largest, the least compressed, the sharpest, the
one no editor saved, the earliest taken, the oldest file.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cmp_to_key
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cbir.config import DUPLICATES_FOLDER
from cbir.copy_check import Comparison, Picture, Pictures, Rule, compare, frame_scores_of, workers
from cbir.errors import ImageDecodeError, UsageError
from cbir.moves.clean import CleanPlan, plan_move, root_of
from index_store.catalog import CatalogReader
from index_store.db import is_under
from index_store.publish import load_search_index
from indexer.image_facts import ImageFacts
from indexer.loader import read_file, thumbnail

LEVELS = ("exact", "near", "similar")
# Near was chosen on half the development pairs (see the module's note); similar adds a rule for a scene
# that moved between two shots, and keeps every near pair.
NEAR_RULE = Rule(cosine=0.7, structure=0.75, detail=0.8, fine=0.75)
RULES = {"near": (NEAR_RULE,), "similar": (NEAR_RULE, Rule(cosine=0.85, structure=0.6, detail=0.8, fine=0.75))}
NEIGHBOURS = 10  # candidates per image from the search index
_BATCH = 32  # candidate pairs checked at once (in parallel on threads); fewer leaves more to skip as joined
_PART_PAIRS = 2048  # candidate pairs (about) whose parts of the graph are read and checked together
_PROCESSES_FROM = 6000  # candidate pairs from which checking in several processes pays for starting them
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


def find_duplicates(catalog, level: str = "near", scope: list[str] | None = None, bases: list[str] | None = None,
                    prefer: list[str] | None = None, on_progress: Callable[[int], object] | None = None,
                    on_total: Callable[[int], object] | None = None,
                    on_group: Callable[[Group], object] | None = None) -> DuplicateReport:
    """Groups of duplicates among the images of ``catalog`` (a CatalogReader or the IndexStore) under ``scope``.

    ``on_total`` hears how many candidate pairs there are and ``on_progress`` how many more were settled
    (checked, or skipped as already joined through others); ``on_group`` hears each group as soon as it is
    final. Images already moved into a ``duplicates`` folder under any of ``bases`` (the indexed roots and
    a ``--dest``) are left out, so a second run finds nothing new.
    """
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    started = time.monotonic()
    set_aside = [os.path.join(b, DUPLICATES_FOLDER) for b in bases or []]

    def wanted(path: str) -> bool:
        return ((not scope or any(is_under(path, s) for s in scope))
                and not any(is_under(path, f) for f in set_aside))

    report = DuplicateReport(level)
    exact = _exact_pairs(catalog, wanted)
    rules = RULES.get(level, ())
    candidates = _candidate_pairs(catalog, min(r.cosine for r in rules), wanted) if rules else {}
    todo = {pair: cosine for pair, cosine in candidates.items() if pair not in exact}
    report.candidate_pairs = len(candidates)
    members = _rows(catalog, {i for pair in [*exact, *todo] for i in pair})
    batches = _batches(members, list(exact), todo, level, prefer or [], catalog.index_dir)
    if on_total:
        on_total(len(todo))
    for done in _run(batches, catalog):
        report.checked_pairs += done.checked
        if on_progress:
            on_progress(done.settled)
        for ranked in done.groups:
            group = Group([replace(members[m.id], facts=m.facts, similarity=m.similarity, structure=m.structure,
                                   detail=m.detail, keep=m.keep) for m in ranked.members], ranked.reason)
            report.groups.append(group)
            if on_group:
                on_group(group)
    report.images = sum(1 for path in catalog.paths_under("/") if wanted(path))
    report.seconds = time.monotonic() - started
    return report


@dataclass
class _Batch:
    """Parts of the candidate graph checked together: nothing outside them can join anything inside."""

    index_dir: Path
    level: str
    prefer: list[str]
    members: dict[int, Member]  # without facts: id, path, size, hash, time
    parts: list[list[int]]
    pairs: dict[tuple[int, int], float]  # candidate pairs -> embedding cosine
    exact: list[tuple[int, int]]


@dataclass
class _Done:
    checked: int  # pairs looked at
    settled: int  # pairs looked at or skipped
    groups: list[Group]  # ranked; members' facts without their pictures


def _batches(members: dict[int, Member], exact: list[tuple[int, int]], todo: dict[tuple[int, int], float],
             level: str, prefer: list[str], index_dir: Path) -> list[_Batch]:
    """The parts of the graph in path order, about ``_PART_PAIRS`` candidate pairs to a batch."""
    parts = sorted(components([*exact, *todo]), key=lambda ids: min(members[i].path for i in ids))
    part_of = {i: k for k, ids in enumerate(parts) for i in ids}
    pairs_of: dict[int, dict[tuple[int, int], float]] = {}
    exact_of: dict[int, list[tuple[int, int]]] = {}
    for pair, cosine in todo.items():
        pairs_of.setdefault(part_of[pair[0]], {})[pair] = cosine
    for pair in exact:
        exact_of.setdefault(part_of[pair[0]], []).append(pair)
    batches: list[_Batch] = []
    current: _Batch | None = None
    for k, ids in enumerate(parts):
        if current is None or len(current.pairs) >= _PART_PAIRS:
            current = _Batch(index_dir, level, prefer, {}, [], {}, [])
            batches.append(current)
        current.parts.append(ids)
        current.members.update({i: members[i] for i in ids})
        current.pairs.update(pairs_of.get(k, {}))
        current.exact += exact_of.get(k, [])
    return batches


def _run(batches: list[_Batch], catalog) -> Iterator[_Done]:
    """Each batch checked, here on threads for a small scan, else in a process per core (the looks are many
    small calls: threads in one process share its interpreter, processes do not)."""
    pairs = sum(len(b.pairs) for b in batches)
    cores = max(1, min(8, os.cpu_count() or 1))
    if pairs < _PROCESSES_FROM or cores == 1 or len(batches) == 1:
        with workers() as pool:
            for batch in batches:
                yield _check_batch(batch, catalog, pool)
        return
    context = multiprocessing.get_context("spawn")  # a server's threads must not be forked
    with ProcessPoolExecutor(cores, mp_context=context) as processes:
        pending = [processes.submit(_check_batch_apart, batch) for batch in batches[: 2 * cores]]
        waiting = list(batches[2 * cores:])
        while pending:
            first = pending.pop(0)  # in order, so groups come in path order; the others keep working
            yield first.result()
            if waiting:
                pending.append(processes.submit(_check_batch_apart, waiting.pop(0)))


_READERS: dict[Path, Any] = {}


def _check_batch_apart(batch: _Batch) -> _Done:
    """``_check_batch`` in a worker process, on its own read-only view of the catalog."""
    if batch.index_dir not in _READERS:
        _READERS[batch.index_dir] = CatalogReader.open(batch.index_dir)
    return _check_batch(batch, _READERS[batch.index_dir], _Serial())


class _Serial:
    """A pool of one, in the caller's thread (a worker process is one of several already)."""

    def map(self, work, items):
        return list(map(work, items))


def _check_batch(batch: _Batch, catalog, pool) -> _Done:
    rules = RULES.get(batch.level, ())
    members = batch.members
    pictures = Pictures(catalog, {i: m.hash for i, m in members.items()}, {i: m.path for i, m in members.items()})
    joined = _UnionFind()
    for a, b in batch.exact:
        joined.union(a, b)
    pairs = sorted(batch.pairs, key=lambda pair: -batch.pairs[pair])
    signatures = pictures.signatures(sorted({i for pair in pairs for i in pair}), pool)
    frames = dict(zip(pairs, frame_scores_of(pairs, signatures).tolist(), strict=True))
    checked = _check(pairs, frames, batch.pairs, rules, pictures, joined, pool)
    groups = []
    for ids in batch.parts:
        for group_ids in _groups_of(ids, joined):
            group = _rank([replace(members[i]) for i in group_ids], pictures, catalog, batch.prefer, rules)
            if len(group.members) > 1:
                for m in group.members:  # what travels back: the facts a person weighs, not the pictures
                    assert m.facts is not None
                    m.facts = replace(m.facts, fine=None, detail=_NOTHING, thumb=_NOTHING, signature=_NOTHING)
                groups.append(group)
    return _Done(checked, len(pairs), groups)


_NOTHING = np.zeros(0, np.float32)


def _check(pairs: list[tuple[int, int]], frames: dict[tuple[int, int], float], todo: dict[tuple[int, int], float],
           rules: tuple[Rule, ...], pictures: Pictures, joined: _UnionFind, pool) -> int:
    """Check ``pairs`` (most alike first), joining those that pass; returns how many were looked at.

    A pair whose two images are already joined through others is not checked: it cannot change the groups,
    and a burst of ten copies has 45 pairs but needs 9. A pair whose frames are too unlike for any rule,
    and that the crop search cannot save, costs one crop search; most distinct pairs end there.
    """
    looked = 0
    while pairs:
        batch: list[tuple[int, int]] = []
        rest: list[tuple[int, int]] = []
        for pair in pairs:
            if joined.find(pair[0]) == joined.find(pair[1]):
                continue
            (batch if len(batch) < _BATCH else rest).append(pair)
        pictures.load([i for pair in batch for i in pair], pool)
        work = [(pictures.get(a), pictures.get(b), frames[(a, b)], todo[(a, b)]) for a, b in batch]
        verdicts = pool.map(lambda job: _copies(job[0], job[1], job[2], job[3], rules), work)
        for pair, same in zip(batch, verdicts, strict=True):
            if same:
                joined.union(*pair)
        looked += len(batch)
        pairs = rest
    return looked


def _copies(a: Picture | None, b: Picture | None, frame: float, cosine: float, rules: tuple[Rule, ...]) -> bool:
    if a is None or b is None:
        return False  # unreadable since indexing
    found = compare(a, b, frame, rules, cosine)
    return any(rule.passes(cosine, found) for rule in rules)


def _groups_of(ids: list[int], joined: _UnionFind) -> list[list[int]]:
    by_root: dict[Hashable, list[int]] = {}
    for i in ids:
        by_root.setdefault(joined.find(i), []).append(i)
    return [sorted(g) for g in by_root.values() if len(g) > 1]


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


def _rank(members: list[Member], pictures: Pictures, catalog, prefer: list[str], rules: tuple[Rule, ...] = ()
          ) -> Group:
    """The group with the copy a person would keep first, and why it is that one. Members whose pictures
    cannot be read are left out."""
    found = {m.id: pictures.get(m.id) for m in members}
    members = [m for m in members if found[m.id] is not None]
    for member in members:
        member.facts = found[member.id].facts  # type: ignore[union-attr]
    if len(members) < 2:
        return Group(members)
    preferred = {m.id: any(is_under(m.path, p) for p in prefer) for m in members}

    def order(a: Member, b: Member) -> int:
        return _compare(a, b, preferred)

    ordered = sorted(members, key=cmp_to_key(order))
    keeper = ordered[0]
    keeper.keep = True
    kept = catalog.vector(keeper.id)
    for member in ordered[1:]:
        member.similarity = min(1.0, float(kept @ catalog.vector(member.id)))
        if member.hash != keeper.hash:
            # The first look that shows it a copy (a pair joined through others may show none).
            seen: Comparison = compare(found[keeper.id], found[member.id], rules=rules,  # type: ignore[arg-type]
                                       cosine=member.similarity)
            member.structure, member.detail = seen.structure, seen.detail
    reason = _reason(keeper, ordered[1], preferred)
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
    return plan_copies([(m.id, m.similarity) for g in report.groups for m in g.members[1:]], catalog, roots, dest)


def plan_copies(copies: list[tuple[int, float]], catalog, roots: list[str], dest: str | None) -> CleanPlan:
    """A move plan of the images ``copies`` names (id, similarity to the copy kept) into a ``duplicates``
    folder; one that is no longer indexed, or outside the indexed folders, stays where it is."""
    plan = CleanPlan()
    taken: set[str] = set()
    problems: dict[str, str | None] = {}
    rows = catalog.rows_by_ids([i for i, _ in copies])
    for image_id, similarity in copies:
        row = rows.get(image_id)
        root = root_of(row.path, roots) if row is not None else None
        if row is None or root is None:
            plan.skipped.append((row.path if row is not None else f"image {image_id}",
                                 "no longer indexed, not moved" if row is None
                                 else "outside the indexed folders, not moved"))
            continue
        plan_move(plan, row, root, dest, DUPLICATES_FOLDER, similarity, taken, problems)
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
