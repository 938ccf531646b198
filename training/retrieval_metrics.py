"""Leave-one-out retrieval quality on labelled embeddings (the Trento study's measure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RetrievalReport:
    queries: int
    singletons_left_out: int
    top_k: dict[int, float] = field(default_factory=dict)  # k -> fraction of queries hit
    map_at_10: float = 0.0

    def as_dict(self) -> dict:
        return {
            "queries": self.queries,
            "singletons_left_out": self.singletons_left_out,
            **{f"top{k}": round(v, 4) for k, v in sorted(self.top_k.items())},
            "mAP@10": round(self.map_at_10, 4),
        }


def leave_one_out(
    vectors: np.ndarray, labels: list[str], ks: tuple[int, ...] = (1, 5, 10), chunk: int = 1024
) -> RetrievalReport:
    """Each image queries all others by cosine similarity (vectors must be unit length).

    A query hits at rank k when one of its k nearest neighbours, itself
    excluded, shares its label. Images alone in their class cannot hit and
    are left out (and counted).
    """
    labels_arr = np.asarray(labels)
    _, codes = np.unique(labels_arr, return_inverse=True)
    class_sizes = np.bincount(codes)
    n = len(vectors)
    # The query itself sorts last; keep it out of the ranking even when n is small.
    depth = min(max(max(ks), 10), n - 1)
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    queries = 0
    for start in range(0, n, chunk):
        sims = vectors[start : start + chunk] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # never retrieve yourself
        order = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
        for row, ranked in enumerate(order):
            code = codes[start + row]
            relevant_total = class_sizes[code] - 1
            if relevant_total == 0:
                continue
            queries += 1
            relevant = codes[ranked] == code
            for k in ks:
                hits[k] += bool(relevant[:k].any())
            top10 = relevant[:10]
            precision_at = np.cumsum(top10) / np.arange(1, len(top10) + 1)
            ap_sum += float((precision_at * top10).sum()) / min(relevant_total, 10)
    singletons = int((class_sizes[codes] == 1).sum())
    return RetrievalReport(
        queries=queries,
        singletons_left_out=singletons,
        top_k={k: hits[k] / queries if queries else 0.0 for k in ks},
        map_at_10=ap_sum / queries if queries else 0.0,
    )
