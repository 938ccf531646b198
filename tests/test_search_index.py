"""Exact and approximate FAISS indexes built from the real SQLite catalog: choice, recall, patching."""

from __future__ import annotations

import numpy as np
import pytest

from index_store.catalog import CatalogReader
from index_store.faiss_index import EXACT_LIMIT, plan_index
from index_store.manifest import read_manifest
from index_store.publish import load_search_index
from index_store.writer import IndexStore, fixed_claim

DIM = 64


def _clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 centres: shaped like embeddings of a photo library."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16).astype(np.float32)  # exactly what the catalog stores


def _store(index_dir, vectors: np.ndarray, index_type: str | None = None, offset: int = 0) -> list[int]:
    with IndexStore.open(index_dir, fixed_claim("model-a", DIM)) as store:
        if index_type:
            store.set_index_type(index_type)
        run = store.begin_run("/photos")
        ids = [store.add(f"/photos/{offset + i}.jpg", 1, 1, f"h{offset + i}", v, run) for i, v in enumerate(vectors)]
        store.finish()
    return ids


def _search(index_dir, queries: np.ndarray, k: int = 10) -> np.ndarray:
    reader = CatalogReader.open(index_dir)
    try:
        return load_search_index(reader).search(queries, k)[1]
    finally:
        reader.close()


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)]))


def test_auto_is_exact_up_to_the_limit_then_approximate():
    assert plan_index("auto", EXACT_LIMIT).kind == "flat"
    big = plan_index("auto", EXACT_LIMIT + 1)
    assert big.kind == "ivf" and big.nlist & (big.nlist - 1) == 0 and 0 < big.nprobe <= big.nlist
    assert plan_index("auto", 10**6).nlist > plan_index("auto", 10**5).nlist
    assert plan_index("ivf", 50).kind == "flat"  # too few vectors to train k-means on
    with pytest.raises(ValueError):
        plan_index("pq", 10)


def test_ivf_index_keeps_recall_and_is_patched_in_place(tmp_path):
    vectors = _clustered(4000, seed=1)
    ids = np.array(_store(tmp_path, vectors, "ivf"))
    manifest = read_manifest(tmp_path)
    assert manifest.index_type == "ivf" and manifest.nlist >= 16 and manifest.count == 4000
    assert manifest.estimated_bytes > 0 and manifest.index_choice == "ivf"

    queries = _clustered(100, seed=2)
    truth = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    assert _recall(_search(tmp_path, queries), truth) >= 0.95

    # Remove 500 and add 300 more: the published index is patched, and answers like a fresh one.
    extra = _clustered(300, seed=3)
    removed = set(ids[:500].tolist())
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        for image_id in removed:
            store.remove(image_id)
        run = store.begin_run("/photos")
        new_ids = [store.add(f"/photos/new{i}.jpg", 1, 1, f"n{i}", v, run) for i, v in enumerate(extra)]
        store.finish()
        assert store.patched  # patched in place, not silently rebuilt
    assert read_manifest(tmp_path).count == 3800
    found = _search(tmp_path, queries, k=50)
    assert not removed & set(found.ravel().tolist())
    assert all(_search(tmp_path, extra[i : i + 1], k=1)[0][0] == new_ids[i] for i in range(0, 300, 30))


def test_hnsw_rebuilds_on_removal_and_type_changes_rebuild(tmp_path):
    vectors = _clustered(1500, seed=4)
    ids = _store(tmp_path, vectors, "hnsw")
    assert read_manifest(tmp_path).index_type == "hnsw"
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        store.remove(ids[0])
        store.finish()
        assert not store.patched  # HNSW cannot remove: rebuilt
    assert ids[0] not in _search(tmp_path, vectors[:1], k=10)[0]
    assert _search(tmp_path, vectors[1:2], k=1)[0][0] == ids[1]

    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        store.set_index_type("flat")
        store.finish()  # nothing else changed, but the kind did
    manifest = read_manifest(tmp_path)
    assert manifest.index_type == "flat" and manifest.count == 1499
    truth = np.array(ids[1:])[np.argsort(-(vectors[1:20] @ vectors[1:].T), axis=1)[:, :10]]
    assert _recall(_search(tmp_path, vectors[1:20]), truth) == 1.0
