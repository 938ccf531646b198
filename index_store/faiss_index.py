"""The FAISS search index: which kind for how many vectors, how to build, patch and tune it.

Exact inner-product search (``flat``) scans every vector: 9 ms per query at
10^4 and 72 ms at 10^5 on 2 cores (``benchmarks/search_scale.py``). Past
``EXACT_LIMIT`` vectors ``auto`` switches to ``ivf``, an inverted file with
8-bit scalar-quantized codes (a quarter of float32's memory), which kept
recall@10 at or above 0.95 against exact search in that benchmark. ``hnsw`` is
faster still but takes four times the memory, builds slowly and cannot remove
vectors, so any removal rebuilds it; it is there on request. Past what fits
in memory as ``ivf`` (``ONDISK_MEMORY_SHARE`` of this machine's RAM at the
2,270 bytes per vector that benchmark measured), ``auto`` picks ``ivfpq``:
64-byte PQ codes in memory-mapped inverted lists on disk, each query's
shortlist re-scored from the catalog (``index_store.ondisk``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index_store.ondisk import PQ_BYTES, build_ondisk, shortlist_for

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw", "ivfpq")
EXACT_LIMIT = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80
IVF_BYTES_PER_VECTOR = 2270  # measured (benchmarks/search_scale.py): SQ8 codes, ids and list overhead
ONDISK_MEMORY_SHARE = 0.5  # auto goes on disk when an in-memory IVF would take more of the RAM than this
# k-means needs a few dozen points per centroid; more only costs memory and time.
TRAIN_POINTS_PER_LIST = 39
MAX_TRAIN_POINTS = 60_000

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IndexPlan:
    kind: str  # flat, ivf, hnsw or ivfpq
    nlist: int = 0
    nprobe: int = 0
    shortlist: int = 0  # ivfpq: candidates re-scored exactly per query

    @property
    def description(self) -> str:
        if self.kind == "ivf":
            return f"IVF{self.nlist},SQ8 nprobe={self.nprobe}"
        if self.kind == "hnsw":
            return f"HNSW{HNSW_M} efSearch={HNSW_EF_SEARCH}"
        if self.kind == "ivfpq":

            return (f"IVF{self.nlist},PQ{PQ_BYTES} on disk nprobe={self.nprobe}, "
                    f"top {self.shortlist} re-ranked (float16)")
        return "Flat (exact)"


def plan_index(choice: str, count: int) -> IndexPlan:
    """The index for ``count`` vectors under a user's choice (auto, flat, ivf, hnsw)."""
    if choice not in INDEX_TYPES:
        raise ValueError(f"unknown index type {choice!r}")
    kind = choice
    if choice == "auto":
        kind = "flat" if count <= EXACT_LIMIT else "ivf"
        if kind == "ivf" and count * IVF_BYTES_PER_VECTOR > ONDISK_MEMORY_SHARE * memory_bytes():
            kind = "ivfpq"
    if kind in ("ivf", "ivfpq"):
        if count < 2 * 64:
            return IndexPlan("flat")  # too few vectors to train even a small inverted file
        nlist = max(16, min(int(4 * math.sqrt(count)), count // TRAIN_POINTS_PER_LIST))
        nlist = 1 << round(math.log2(nlist))  # a power of two, so small growth keeps the same plan
        nprobe = max(8, min(nlist, nlist // 32 if nlist >= 1024 else 32))
        if kind == "ivfpq":

            return IndexPlan(kind, nlist, nprobe, shortlist_for(count))
        return IndexPlan(kind, nlist, nprobe)
    return IndexPlan(kind)


def memory_bytes() -> int:
    """This machine's physical memory (8 GiB when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def estimate_bytes(plan: IndexPlan, count: int, dim: int) -> int:
    """Memory the index will take (autofaiss' habit: know it before building)."""
    if plan.kind == "ivf":
        return count * (dim + 8) + plan.nlist * dim * 4
    if plan.kind == "ivfpq":  # resident: the quantizer and codebooks; the lists are mapped from disk
        return plan.nlist * dim * 4 + 256 * dim * 4
    if plan.kind == "hnsw":
        return count * (dim * 4 + HNSW_M * 2 * 4 + 8 + 16)
    return count * (dim * 4 + 8)


def new_index(plan: IndexPlan, dim: int):
    import faiss

    if plan.kind in ("ivf", "ivfpq"):

        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, plan.nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT) if plan.kind == "ivf" else \
            faiss.IndexIVFPQ(quantizer, dim, plan.nlist, PQ_BYTES, 8, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()  # type: ignore[attr-defined]  # SWIG: the IVF index owns it now
        return index
    if plan.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap2(inner)
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def estimate_disk_bytes(plan: IndexPlan, count: int) -> int:
    """Bytes of the on-disk lists of an ``ivfpq`` index (codes and ids); 0 for the kinds kept in memory."""

    return count * (PQ_BYTES + 8) if plan.kind == "ivfpq" else 0


def build_index(plan: IndexPlan, dim: int, chunks: Callable[[], Chunks],
                training_sample: Callable[[int], np.ndarray], data_path: Path | None = None):
    """An index from (ids, vectors) chunks, so memory stays one chunk (or one training sample) above the index.

    ``ivfpq`` writes its lists to ``data_path``.
    """
    if plan.kind == "ivfpq":

        if data_path is None:
            raise ValueError("an on-disk index needs a data file")
        index = build_ondisk(new_index(plan, dim), chunks, training_sample, data_path)
        tune(index, plan)
        return index
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


def faiss_of(index):
    """The FAISS index itself: ``index``, or the one inside an on-disk index's re-ranking wrapper."""
    return getattr(index, "inner", index)


def tune(index, plan: IndexPlan) -> None:
    """Search-time parameters are not all stored in the file; set them after every load."""
    import faiss

    index = faiss_of(index)
    if plan.kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = plan.nprobe
    elif plan.kind == "hnsw":
        inner: Any = faiss.downcast_index(index.index)
        inner.hnsw.efSearch = HNSW_EF_SEARCH


def cap_probes(index, nprobe: int) -> None:
    """Visit at most ``nprobe`` inverted lists per query (IVF only; other kinds are left as they are)."""
    import faiss

    index = faiss_of(index)
    if isinstance(faiss.downcast_index(index), faiss.IndexIVF):
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = max(1, min(int(ivf.nprobe), nprobe))


def describe_index(index) -> tuple[str, int]:
    """(kind, nlist) of a loaded FAISS index, to check it is what its manifest says."""
    import faiss

    index = faiss.downcast_index(faiss_of(index))
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq", int(index.nlist)
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


def search_within(index, vectors: np.ndarray, k: int, allowed: set[int]):
    """``index.search`` restricted to the ids in ``allowed``, inside FAISS (IVF keeps its probe count)."""
    import faiss

    selector = faiss.IDSelectorBatch(np.array(sorted(allowed), np.int64))
    ivf = faiss.try_extract_index_ivf(faiss_of(index))
    params: Any = faiss.SearchParametersIVF() if ivf is not None else faiss.SearchParameters()
    params.sel = selector
    if ivf is not None:
        params.nprobe = ivf.nprobe  # the parameters replace the index's own, so carry its probe count
    return index.search(vectors, k, params=params)


def write_index(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_index(path: Path):
    import faiss

    return faiss.read_index(str(path))
