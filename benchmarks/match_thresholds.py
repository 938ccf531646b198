"""What a similarity score means: score distributions of real pairs, behind `cbir query`'s judgements.

    python -m benchmarks.match_thresholds [--json OUT]

Embeds the development sets with cbir's engine (ImageNet trunk) and scores
every pair of photos:
- near-duplicates (../shared/data/near_duplicates): pairs within a group, the
  same photo re-encoded, resized, filtered or edited (and a few harder kin:
  burst and video frames, stereo pairs); pairs across groups;
- food groups (../shared/data/retrieval_food_groups): different photos of the
  same kind of food, and of different kinds;
- gallery categories (../shared/data/gallery): same category, different.
For each threshold it prints the share of each kind of pair at or above it,
and how likely a pair at or above it is to be of the same group. cbir's
``MATCH_SCORE`` and ``RELATED_SCORE`` (cbir/search.py) are read off this table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from benchmarks.common import emit_json

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]


def embed_groups(folder: Path, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors and group names (the parent folder) of every image under ``folder``."""
    from indexer.labelled import embed_labelled, list_labelled_images

    data = embed_labelled(list_labelled_images(folder), embedder)
    return data.vectors, np.asarray(data.labels)


def pair_scores(vectors: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = vectors @ vectors.T
    upper = np.triu_indices(len(vectors), 1)
    same = (groups[:, None] == groups[None, :])[upper]
    return scores[upper][same], scores[upper][~same]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "data"
    parser.add_argument("--near-duplicates", type=Path, default=shared / "near_duplicates")
    parser.add_argument("--food", type=Path, default=shared / "retrieval_food_groups")
    parser.add_argument("--gallery", type=Path, default=shared / "gallery")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from cbir.search import MATCH_SCORE, RELATED_SCORE
    from indexer.engines.load import load_embedder

    embedder = load_embedder(None, "imagenet")
    sets = {name: pair_scores(*embed_groups(folder, embedder))
            for name, folder in (("near-duplicates", args.near_duplicates), ("food groups", args.food),
                                 ("gallery categories", args.gallery))}
    result: dict = {"match_score": MATCH_SCORE, "related_score": RELATED_SCORE, "sets": {}}
    print(f"{'threshold':>9}  " + "  ".join(f"{name + ' same/diff/P(same)':>34}" for name in sets))
    for name, (same, diff) in sets.items():
        result["sets"][name] = {"same_pairs": len(same), "different_pairs": len(diff), "quantiles_same": {
            f"{q:.2f}": round(float(np.quantile(same, q)), 3) for q in (0.01, 0.05, 0.1, 0.5, 0.9)},
            "at_or_above": {}}
    for t in THRESHOLDS:
        cells = []
        for name, (same, diff) in sets.items():
            s, d = float((same >= t).mean()), float((diff >= t).mean())
            n_same, n_diff = int((same >= t).sum()), int((diff >= t).sum())
            p_same = n_same / (n_same + n_diff) if n_same + n_diff else 0.0
            result["sets"][name]["at_or_above"][f"{t:.2f}"] = {"same": round(s, 4), "different": round(d, 4),
                                                              "p_same": round(p_same, 3)}
            cells.append(f"{s:>10.3f} {d:>10.4f} {p_same:>10.3f}")
        print(f"{t:>9.2f}  " + "  ".join(f"{c:>34}" for c in cells))
    print(f"cbir judges: match >= {MATCH_SCORE}, related >= {RELATED_SCORE}, else unrelated")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
