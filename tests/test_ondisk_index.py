"""The on-disk IVF-PQ index (``--index-type ivfpq``) on 10^5 vectors: recall@10 against exact search,
reopening, and an incremental patch; the real SQLite catalog and FAISS files."""

from __future__ import annotations

import numpy as np

from index_store.catalog import CatalogReader
from index_store.faiss_index import search_within
from index_store.manifest import read_manifest
from index_store.publish import load_search_index
from index_store.writer import IndexStore, fixed_claim

DIM = 2048
N = 100_000


def _clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around cluster centres, shaped like image embeddings (uniform noise would not be)."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(store: IndexStore, vectors: np.ndarray, first: int) -> None:
    run = store.begin_run("/photos", register=False)
    for i, vector in enumerate(vectors, start=first):
        store.add(f"/photos/{i:07d}.jpg", 1000 + i, i, f"{i:032x}", vector, run)
        if i % 5000 == 0:
            store.commit()
    store.commit()


def test_ivfpq_on_disk_recall_reopen_and_patch(tmp_path):
    centres = np.random.default_rng(0).standard_normal((1000, DIM), dtype=np.float32) / np.sqrt(DIM)
    vectors = _clustered(N, 1, centres)
    index_dir = tmp_path / "index"
    with IndexStore.open(index_dir, fixed_claim("synthetic", DIM)) as store:
        store.set_index_type("ivfpq")
        _fill(store, vectors, 0)
        store.finish()
    manifest = read_manifest(index_dir)
    assert manifest is not None and manifest.index_type == "ivfpq" and manifest.count == N
    data = index_dir / manifest.ivf_data_file
    assert data.stat().st_size >= N * (64 + 8) and manifest.ivf_data_bytes == data.stat().st_size

    stored = vectors.astype("<f2").astype(np.float32)  # what the catalog keeps, and exact search sees
    queries = _clustered(100, 2, centres)
    truth = np.argsort(-(queries @ stored.T), axis=1)[:, :10] + 1  # catalog ids start at 1

    reader = CatalogReader.open(index_dir)
    index = load_search_index(reader)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95, recall
    allowed = set(range(1, N + 1, 7))  # a tag filter: only these ids may be hits, re-ranked as well
    _, within = search_within(index, queries[:3], 10, allowed)
    assert all(int(i) in allowed for i in within.ravel()) and (within >= 0).all()
    reader.close()

    again = CatalogReader.open(index_dir)  # reopened: the same answers from the memory-mapped lists
    _, found_again = load_search_index(again).search(queries, 10)
    again.close()
    assert (found_again == found).all()

    extra = _clustered(500, 3, centres)
    with IndexStore.open(index_dir, fixed_claim("synthetic", DIM)) as store:
        _fill(store, extra, N)
        store.finish()
        assert store.patched
    patched = read_manifest(index_dir)
    assert patched is not None and patched.count == N + 500 and patched.ivf_data_file != manifest.ivf_data_file
    assert not data.exists()  # the earlier generation's lists are gone once nothing refers to them
    reader = CatalogReader.open(index_dir)
    scores, ids = load_search_index(reader).search(extra[:20], 1)
    reader.close()
    assert (ids[:, 0] == np.arange(N + 1, N + 21)).all() and (scores[:, 0] > 0.999).all()
