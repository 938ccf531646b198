"""The on-disk IVF-PQ index, for collections past what fits in memory even as 8-bit codes.

Each vector is kept as a 64-byte product-quantization code and its 8-byte id
in inverted lists that live in a data file beside the FAISS file (FAISS
``OnDiskInvertedLists``), memory-mapped when searched: what stays resident is
the coarse quantizer and the PQ codebooks, plus the pages of the lists a
query visits. PQ codes alone rank coarsely, so every query's shortlist
(``shortlist_for``: 100 candidates, one per thousand vectors past 10^5, at
most 2,000; or ten per wanted hit) is scored again exactly
against the catalog's float16 vectors, which cbir stores anyway: no second
copy of the vectors is needed for the re-rank.

A first build trains on a sample, encodes the vectors shard by shard into
temporary shard files, and merges those into one data file (FAISS
``merge_ondisk``). A later run patches a copy of the published data file
(a sequential copy, no re-encoding) and publishes the copy under the new
generation's name, so readers of the old one are never disturbed. FAISS
prints progress on the C stdout while it resizes on-disk lists; that stream
carries cbir's results, so it is pointed at stderr around those calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

PQ_BYTES = 64  # bytes per vector code: 64 sub-vectors of 32 dimensions, 8 bits each
SHORTLIST = 100  # candidates re-scored exactly per query, at least
# PQ64 ranks neighbours that are almost equally close (one cluster of a collection) nearly at random, so
# the shortlist has to cover such a cluster: on benchmarks/search_scale.py's 1,000 clusters, recall@10 at
# 10^6 vectors was 0.31 with 100 candidates, 0.60 with 300 and 0.99 with 1,000 (30 ms a query).
SHORTLIST_PER_VECTORS = 1000
MAX_SHORTLIST = 2000  # 8 MB of float16 vectors read per query
QUERIES_PER_RERANK = 16
SHARD_VECTORS = 200_000  # vectors encoded per shard file before the merge
MIN_PQ_TRAIN = 256 * 39  # k-means needs ~39 points per centroid, and each PQ codebook has 256
DATA_SUFFIX = ".ivfdata"

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]
_stdout_lock = threading.Lock()


def data_file_name(faiss_file: str, generation: int) -> str:
    """The lists file of generation ``generation`` beside the FAISS file ``faiss_file`` (vectors.7.ivfdata)."""
    return f"{Path(faiss_file).stem}.{generation}{DATA_SUFFIX}"


@contextlib.contextmanager
def c_stdout_to_stderr() -> Iterator[None]:
    """Send what C code prints on stdout to stderr for the duration (FAISS's on-disk progress lines)."""
    with _stdout_lock:
        libc = ctypes.CDLL(None)
        sys.stdout.flush()
        libc.fflush(None)
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            yield
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)


def build_ondisk(trained, chunks: Callable[[], Chunks], training_sample: Callable[[int], np.ndarray],
                 data_path: Path):
    """Train the empty IVF-PQ index ``trained`` on a sample, encode shard by shard, merge the shards into
    ``data_path``; returns the index."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    sample = training_sample(max(MIN_PQ_TRAIN, trained.nlist * 39))
    trained.train(np.ascontiguousarray(sample, dtype=np.float32))
    del sample
    shard_paths: list[str] = []
    try:
        shard = None
        for ids, vectors in chunks():
            if len(ids) == 0:
                continue
            if shard is None:
                shard = faiss.clone_index(trained)
            shard.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
            if shard.ntotal >= SHARD_VECTORS:
                shard_paths.append(_write_shard(shard, data_path, len(shard_paths)))
                shard = None
        if shard is not None or not shard_paths:
            shard_paths.append(_write_shard(shard if shard is not None else faiss.clone_index(trained), data_path,
                                            len(shard_paths)))
        data_path.unlink(missing_ok=True)
        index = faiss.clone_index(trained)
        with c_stdout_to_stderr():
            merge_ondisk(index, shard_paths, str(data_path))
        _fsync(data_path)
        return index
    finally:
        for path in shard_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _write_shard(shard, data_path: Path, number: int) -> str:
    import faiss

    path = str(data_path.with_name(f".{data_path.name}.shard{number}.tmp"))
    faiss.write_index(shard, path)
    return path


def patch_ondisk(header: Path, old_data: Path, new_data: Path, removed: np.ndarray, added: Chunks):
    """A copy of the published index with ``removed`` ids gone and ``added`` chunks in, written to ``new_data``."""
    new_data.unlink(missing_ok=True)
    shutil.copyfile(old_data, new_data)
    index = open_ondisk(header, new_data, read_only=False)
    with c_stdout_to_stderr():
        if len(removed):
            index.remove_ids(removed.astype(np.int64))
        for ids, vectors in added:
            if len(ids):
                index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    _fsync(new_data)
    return index


def _fsync(path: Path) -> None:
    """The lists reach the disk before a header naming them is published (they were written through mmap)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_ondisk(header: Path, data: Path, read_only: bool = True):
    """The index in ``header`` with its lists memory-mapped from ``data`` (wherever the index folder now is)."""
    import faiss

    index = faiss.read_index(str(header), faiss.IO_FLAG_SKIP_IVF_DATA)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)  # type: ignore[arg-type]
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise ValueError(f"{header} has no on-disk inverted lists")
    lists.filename = str(data)
    lists.read_only = read_only
    lists.do_mmap()
    return index


def shortlist_for(count: int) -> int:
    """Candidates to re-score per query for an index of ``count`` vectors."""
    return min(MAX_SHORTLIST, max(SHORTLIST, count // SHORTLIST_PER_VECTORS))


class Reranked:
    """An on-disk IVF-PQ index whose shortlists are re-scored exactly from the catalog's float16 vectors.

    Answers ``search`` like a FAISS index (scores and ids, best first, -1 where there are fewer hits).
    """

    def __init__(self, inner, vectors_of: Callable[[list[int]], dict[int, np.ndarray]],
                 keep_alive: object = None, shortlist: int | None = None) -> None:
        self.inner = inner
        self.vectors_of = vectors_of
        self._keep_alive = keep_alive  # e.g. the temporary folder a reader built this index in
        self.shortlist = shortlist or shortlist_for(int(inner.ntotal))

    @property
    def ntotal(self) -> int:
        return int(self.inner.ntotal)

    @property
    def d(self) -> int:
        return int(self.inner.d)

    def search(self, x: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) > QUERIES_PER_RERANK:  # bounds the float32 candidates held at once (a duplicate scan asks 4096)
            parts = [self.search(x[i:i + QUERIES_PER_RERANK], k, params) for i in range(0, len(x), QUERIES_PER_RERANK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        fetch = min(self.ntotal, max(self.shortlist, 10 * k))
        _, candidates = self.inner.search(x, fetch, params=params)
        wanted = sorted({int(i) for i in candidates.ravel() if i >= 0})
        stored = self.vectors_of(wanted) if wanted else {}
        scores = np.full((len(x), k), -np.inf, np.float32)
        ids = np.full((len(x), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(x, candidates, strict=True)):
            known = [int(i) for i in found if i >= 0 and int(i) in stored]
            if not known:
                continue
            exact = np.stack([stored[i] for i in known]) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, :len(best)] = exact[best]
            ids[row, :len(best)] = np.asarray(known, np.int64)[best]
        return scores, ids
