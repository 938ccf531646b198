"""The FAISS search index: which kind for how many vectors, how to build, patch and tune it.

Exact inner-product search (``flat``) scans every vector: 9 ms per query at
10^4 and 72 ms at 10^5 on 2 cores (``benchmarks/search_scale.py``). Past
``EXACT_LIMIT`` vectors ``auto`` switches to ``ivf``, an inverted file with
8-bit scalar-quantized codes (a quarter of float32's memory), which kept
recall@10 at or above 0.95 against exact search in that benchmark. ``hnsw`` is
faster still but takes four times the memory, builds slowly and cannot remove
vectors, so any removal rebuilds it; it is there on request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
EXACT_LIMIT = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80
# k-means needs a few dozen points per centroid; more only costs memory and time.
TRAIN_POINTS_PER_LIST = 39
MAX_TRAIN_POINTS = 60_000

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IndexPlan:
    kind: str  # flat, ivf or hnsw
    nlist: int = 0
    nprobe: int = 0

    @property
    def description(self) -> str:
        if self.kind == "ivf":
            return f"IVF{self.nlist},SQ8 nprobe={self.nprobe}"
        if self.kind == "hnsw":
            return f"HNSW{HNSW_M} efSearch={HNSW_EF_SEARCH}"
        return "Flat (exact)"


def plan_index(choice: str, count: int) -> IndexPlan:
    """The index for ``count`` vectors under a user's choice (auto, flat, ivf, hnsw)."""
    if choice not in INDEX_TYPES:
        raise ValueError(f"unknown index type {choice!r}")
    kind = choice if choice != "auto" else ("flat" if count <= EXACT_LIMIT else "ivf")
    if kind == "ivf":
        if count < 2 * 64:
            return IndexPlan("flat")  # too few vectors to train even a small inverted file
        nlist = max(16, min(int(4 * math.sqrt(count)), count // TRAIN_POINTS_PER_LIST))
        nlist = 1 << round(math.log2(nlist))  # a power of two, so small growth keeps the same plan
        return IndexPlan("ivf", nlist, max(8, min(nlist, nlist // 32 if nlist >= 1024 else 32)))
    return IndexPlan(kind)


def estimate_bytes(plan: IndexPlan, count: int, dim: int) -> int:
    """Memory the index will take (autofaiss' habit: know it before building)."""
    if plan.kind == "ivf":
        return count * (dim + 8) + plan.nlist * dim * 4
    if plan.kind == "hnsw":
        return count * (dim * 4 + HNSW_M * 2 * 4 + 8 + 16)
    return count * (dim * 4 + 8)


def new_index(plan: IndexPlan, dim: int):
    import faiss

    if plan.kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, plan.nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()  # type: ignore[attr-defined]  # SWIG: the IVF index owns it now
        return index
    if plan.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap2(inner)
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def build_index(plan: IndexPlan, dim: int, chunks: Callable[[], Chunks],
                training_sample: Callable[[int], np.ndarray]):
    """An index from (ids, vectors) chunks, so memory stays one chunk (or one training sample) above the index."""
    index = new_index(plan, dim)
    if plan.kind == "ivf":
        sample = training_sample(min(MAX_TRAIN_POINTS, plan.nlist * TRAIN_POINTS_PER_LIST))
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        del sample
    for ids, vectors in chunks():
        if len(ids):
            index.add_with_ids(vectors, ids.astype(np.int64))
    tune(index, plan)
    return index


def tune(index, plan: IndexPlan) -> None:
    """Search-time parameters are not all stored in the file; set them after every load."""
    import faiss

    if plan.kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = plan.nprobe
    elif plan.kind == "hnsw":
        inner: Any = faiss.downcast_index(index.index)
        inner.hnsw.efSearch = HNSW_EF_SEARCH


def cap_probes(index, nprobe: int) -> None:
    """Visit at most ``nprobe`` inverted lists per query (IVF only; other kinds are left as they are)."""
    import faiss

    if isinstance(faiss.downcast_index(index), faiss.IndexIVF):
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = max(1, min(int(ivf.nprobe), nprobe))


def describe_index(index) -> tuple[str, int]:
    """(kind, nlist) of a loaded FAISS index, to check it is what its manifest says."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        return "ivf", int(index.nlist)
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            return "hnsw", 0
        if isinstance(inner, faiss.IndexFlat):
            return "flat", 0
    return type(index).__name__, 0


def can_patch(plan: IndexPlan, removing: bool) -> bool:
    return not (plan.kind == "hnsw" and removing)


def write_index(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_index(path: Path):
    import faiss

    return faiss.read_index(str(path))
