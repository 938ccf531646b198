"""The index store with the real SQLite file and the real FAISS index."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from cbir.errors import IndexBusyError, IndexEmptyError, IndexIncompatibleError
from index_store.catalog import CATALOG_FILE, CatalogReader
from index_store.manifest import read_manifest
from index_store.publish import FAISS_FILE, load_search_index, published_index
from index_store.writer import IndexStore, fixed_claim

DIM = 16


def _unit(rng, n=1):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(index_dir, n=20, seed=0):
    rng = np.random.default_rng(seed)
    vectors = _unit(rng, n)
    with IndexStore.open(index_dir, fixed_claim("model-a", DIM)) as store:
        run = store.begin_run("/photos")
        ids = [store.add(f"/photos/{i}.jpg", 100 + i, i, f"h{i}", vectors[i], run) for i in range(n)]
        store.finish()
    return ids, vectors


def _search(index_dir, vector, k=3):
    reader = CatalogReader.open(index_dir)
    try:
        scores, ids = load_search_index(reader).search(vector[None], k)
        return [int(i) for i in ids[0]], scores[0]
    finally:
        reader.close()


def test_add_finish_and_search(tmp_path):
    ids, vectors = _fill(tmp_path)
    found, scores = _search(tmp_path, vectors[7])
    assert found[0] == ids[7] and scores[0] == pytest.approx(1.0, abs=1e-3)
    manifest = read_manifest(tmp_path)
    assert manifest.count == 20 and manifest.dim == DIM and manifest.model_id == "model-a"


def test_second_writer_is_refused_while_readers_work(tmp_path):
    ids, vectors = _fill(tmp_path)
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)):
        with pytest.raises(IndexBusyError, match="busy"):
            IndexStore.open(tmp_path, fixed_claim("model-a", DIM))
        assert _search(tmp_path, vectors[3])[0][0] == ids[3]
    IndexStore.open(tmp_path, fixed_claim("model-a", DIM)).close()  # free again afterwards


def test_other_model_is_refused(tmp_path):
    _fill(tmp_path)
    with pytest.raises(IndexIncompatibleError, match="model-a"):
        IndexStore.open(tmp_path, fixed_claim("model-b", DIM))


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    _fill(tmp_path)
    conn = sqlite3.connect(tmp_path / CATALOG_FILE)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(IndexIncompatibleError, match="newer cbir"):
        CatalogReader.open(tmp_path)
    with pytest.raises(IndexIncompatibleError, match="newer cbir"):
        IndexStore.open(tmp_path, fixed_claim("model-a", DIM))


def test_missing_index_is_reported(tmp_path):
    with pytest.raises(IndexEmptyError, match="cbir index"):
        CatalogReader.open(tmp_path / "nothing")


def test_not_an_index(tmp_path):
    (tmp_path / CATALOG_FILE).write_bytes(b"garbage" * 100)
    with pytest.raises(IndexIncompatibleError, match="not a cbir index"):
        CatalogReader.open(tmp_path)


def test_uncommitted_batch_is_rolled_back_on_error(tmp_path):
    _fill(tmp_path, n=5)
    rng = np.random.default_rng(1)
    with pytest.raises(RuntimeError):
        with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
            run = store.begin_run("/photos")
            store.add("/photos/new.jpg", 1, 1, "hn", _unit(rng)[0], run)
            raise RuntimeError("crash mid-batch")
    reader = CatalogReader.open(tmp_path)
    assert reader.count() == 5 and reader.row_by_path("/photos/new.jpg") is None
    reader.close()


def test_stale_or_torn_faiss_file_is_rebuilt_from_the_catalog(tmp_path):
    ids, vectors = _fill(tmp_path)
    # A commit without a publish (a crash before finish): the FAISS file is behind.
    rng = np.random.default_rng(2)
    extra = _unit(rng)[0]
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        run = store.begin_run("/photos")
        new_id = store.add("/photos/extra.jpg", 1, 1, "hx", extra, run)
        store.commit()
    assert read_manifest(tmp_path).generation != CatalogReader.open(tmp_path).generation
    assert _search(tmp_path, extra)[0][0] == new_id
    (tmp_path / FAISS_FILE).write_bytes(b"torn")
    assert _search(tmp_path, vectors[4])[0][0] == ids[4]


def test_incremental_publish_matches_a_full_rebuild(tmp_path):
    ids, vectors = _fill(tmp_path)
    rng = np.random.default_rng(3)
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        run = store.begin_run("/photos")
        store.remove(ids[0])
        store.replace_content(ids[1], 1, 1, "changed", vectors[2], run)
        added = store.add("/photos/more.jpg", 1, 1, "hm", _unit(rng)[0], run)
        store.finish()
        assert store.patched  # the published file was patched, not rebuilt
    reader = CatalogReader.open(tmp_path)
    patched = published_index(reader)
    assert patched is not None and patched.ntotal == 20
    stored = {int(i): v for chunk_ids, chunk in reader.iter_vectors() for i, v in zip(chunk_ids, chunk, strict=True)}
    assert ids[0] not in stored and added in stored
    for image_id, vector in stored.items():
        np.testing.assert_allclose(patched.reconstruct(image_id), vector, atol=1e-6)
    reader.close()


def test_sweep_removes_only_unseen_files_under_the_root(tmp_path):
    ids, vectors = _fill(tmp_path, n=4)
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        run = store.begin_run("/photos2")
        other = store.add("/photos2/x.jpg", 1, 1, "hy", vectors[0], run)
        run = store.begin_run("/photos")
        store.mark_seen(ids[0], run)
        store.mark_seen(ids[2], run)
        assert store.finish_root("/photos", run) == 2
        store.finish()
        assert set(store.rows_by_ids([*ids, other])) == {ids[0], ids[2], other}


def test_category_columns_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    with IndexStore.open(tmp_path, fixed_claim("model-a", DIM)) as store:
        run = store.begin_run("/p")
        store.add("/p/a.jpg", 1, 1, "ha", _unit(rng)[0], run, "food", {"food": 0.9, "people": 0.1})
        store.finish()
        row = store.row_by_path("/p/a.jpg")
    assert row.category == "food" and row.category_probs["food"] == 0.9


def test_an_empty_catalog_left_by_a_killed_first_writer_counts_as_no_index(tmp_path):
    """A writer killed between creating the catalog file and its first commit leaves 0 bytes; that is not a
    damaged index but none yet, and the next writer makes it."""
    from cbir.status import index_status
    from index_store.catalog import CATALOG_FILE
    from index_store.writer import IndexStore, fixed_claim

    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / CATALOG_FILE).write_bytes(b"")
    assert index_status(index_dir).exists is False
    with IndexStore.open(index_dir, fixed_claim("m", 4)) as store:
        assert store.count() == 0
    assert index_status(index_dir).exists is True
