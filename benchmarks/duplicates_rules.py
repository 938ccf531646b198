"""How `cbir duplicates` chose its near rule: every look at every candidate pair, then a grid of thresholds.

Used by ``python -m benchmarks.duplicates --choose-rules``. Each candidate pair of the benchmark's index
(embedding cosine from 0.7) is looked at every way the check can look (cbir.copy_check: the same framing,
a crop, a turn or mirror), recording for each look the thumbnail correlation and the shares of agreeing
detail and close-up tiles. A rule (cosine, structure, detail, close-up) joins a pair when one look passes
it, and groups are the connected components. The rule chosen has the best recall on the tuning half among
those with a precision of at least ``MIN_PRECISION`` there and no group joining two different gallery pages
(the issue's "two different documents never group"); the held-out half is only reported.
"""

from __future__ import annotations

import itertools
from pathlib import Path

GRID = {"cosine": (0.7, 0.75, 0.8), "structure": (0.7, 0.75, 0.8, 0.85), "detail": (0.6, 0.7, 0.8, 0.9),
        "fine": (None, 0.6, 0.7, 0.75, 0.8, 0.85)}
MIN_PRECISION = 0.99


def measure(index_dir: Path, photos: Path) -> tuple[dict, dict[int, str], list[tuple[int, int]]]:
    """Every look at every candidate pair: ({pair: {"cos", "looks": [(structure, detail, fine)]}}, id -> path
    relative to ``photos``, the byte-identical pairs)."""
    from cbir.copy_check import DETAIL_TILES, FINE_TILES, Pictures, placements, workers
    from cbir.duplicates import _candidate_pairs
    from index_store.catalog import CatalogReader
    from indexer.structure import tile_agreement

    with CatalogReader.open(index_dir) as reader:
        pairs = _candidate_pairs(reader, min(GRID["cosine"]), lambda path: True)
        rows = reader.rows_by_ids(sorted({i for pair in pairs for i in pair}))
        pictures = Pictures(reader, {i: r.hash for i, r in rows.items()}, {i: r.path for i, r in rows.items()},
                            capacity=len(rows) + 1)
        exact = [(ids[0], other) for ids in reader.same_content_groups() for other in ids[1:]]
        with workers() as pool:
            pictures.load(list(rows), pool)

            def looks(item: tuple[tuple[int, int], float]) -> dict | None:
                (a, b), cosine = item
                pa, pb = pictures.get(a), pictures.get(b)
                if pa is None or pb is None:
                    return None
                frame = float(pa.facts.signature @ pb.facts.signature)
                found = []
                for placed_b, placed in placements(pa, pb, frame, 0.5):
                    fa, fb = pa.facts, placed_b.facts
                    detail = tile_agreement(fa.detail, fb.detail, fa.thumb.shape, fb.thumb.shape, placed,
                                            *DETAIL_TILES).share
                    fine = (tile_agreement(fa.fine, fb.fine, fa.thumb.shape, fb.thumb.shape, placed,
                                           *FINE_TILES).share if fa.fine is not None and fb.fine is not None
                            else None)
                    found.append((placed.score, detail, fine))
                return {"cos": cosine, "looks": found}

            measured = dict(zip(pairs, pool.map(looks, list(pairs.items())), strict=True))
    relative = {i: str(Path(r.path).relative_to(photos)) for i, r in rows.items()}
    return measured, relative, exact


def joins(m: dict | None, rule: tuple) -> bool:
    cosine, structure, detail, fine = rule
    if m is None or m["cos"] < cosine:
        return False
    return any(s >= structure and d >= detail and (fine is None or f is None or f >= fine)
               for s, d, f in m["looks"])


def choose(measured: dict, relative: dict[int, str], exact: list, truth: dict, page_of) -> dict:
    """The grid's results and the rule chosen (see the module's note). ``page_of(path)`` names the gallery
    page a file shows, or None for a photo."""
    from benchmarks.duplicates import score
    from cbir.duplicates import components

    results = []
    for rule in itertools.product(*GRID.values()):
        joined = [pair for pair, m in measured.items() if joins(m, rule)]
        groups = [[relative[i] for i in g if i in relative] for g in components(joined + exact)]
        pages = sum(len({page_of(p) for p in g} - {None}) > 1 for g in groups)
        results.append({"rule": dict(zip(GRID, rule, strict=True)), "page_groups": pages,
                        "tuning": score(groups, truth, 0, "near"), "held_out": score(groups, truth, 1, "near")})
    allowed = [r for r in results if r["page_groups"] == 0 and r["tuning"]["precision"] >= MIN_PRECISION]
    best = max(allowed or results, key=lambda r: (r["tuning"]["recall"], r["tuning"]["precision"]))
    return {"chosen": best, "grid_size": len(results), "min_precision": MIN_PRECISION,
            "top": sorted(allowed, key=lambda r: -r["tuning"]["recall"])[:8]}
