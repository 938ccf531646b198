"""Below the commands: the tag table, and the Ray writer driven by workers in this process (the real
EmbedWorker, without Ray)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tests.datasets import render_document


@pytest.fixture
def tag_store(tmp_path):
    from index_store.writer import IndexStore, fixed_claim

    store = IndexStore.open(tmp_path / "index", fixed_claim("m+head", 4))
    run = store.begin_run("/p")
    rows = {}
    for name, category in (("cat.jpg", "other"), ("dog.jpg", "other"), ("bill.png", "receipt")):
        vector = np.ones(4, np.float32) / 2
        rows[name] = store.add(f"/p/{name}", 1, 1, name, vector, run, category, {category: 0.9})
    store.set_tags(rows["cat.jpg"], [("n1-cat", 0.8), ("n0-animal", 0.9)])
    store.set_tags(rows["dog.jpg"], [("n2-dog", 0.7), ("n0-animal", 0.75)])
    store.commit()
    yield store, rows
    store.close()


def test_the_tag_table_ranks_by_the_weakest_word_and_follows_categories(tag_store):
    store, rows = tag_store
    assert store.find_tagged([["n0-animal"]], None) == [(rows["cat.jpg"], 0.9), (rows["dog.jpg"], 0.75)]
    assert store.find_tagged([["n0-animal"], ["n1-cat", "n2-dog"]], 1) == [(rows["cat.jpg"], 0.8)]
    assert store.ids_tagged([["n2-dog"]]) == {rows["dog.jpg"]}
    assert store.tags_of([rows["cat.jpg"]])[rows["cat.jpg"]] == [("n0-animal", 0.9), ("n1-cat", 0.8)]
    store.retag_categories("category:")
    store.commit()
    assert store.find_tagged([["category:receipt"]], None) == [(rows["bill.png"], 0.9)]
    store.set_tags(rows["cat.jpg"], [])  # replaced, not added to
    store.commit()
    assert store.ids_tagged([["n1-cat"]]) == set()
    with sqlite3.connect(store.index_dir / "catalog.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM image_tags WHERE image_id = ?", (rows["cat.jpg"],)).fetchone()[0] == 0


def test_the_tag_table_pages_and_counts_within_score_bounds(tag_store):
    store, rows = tag_store
    animal = [["n0-animal"]]
    assert store.count_tagged(animal) == 2 and store.count_tagged(animal, 0.8) == 1
    assert store.find_tagged(animal, 1, 1) == [(rows["dog.jpg"], 0.75)]
    assert store.find_tagged(animal, None, 1) == [(rows["dog.jpg"], 0.75)]
    assert store.find_tagged(animal, None, at_least=0.8) == [(rows["cat.jpg"], 0.9)]
    assert store.find_tagged(animal, 3, below=0.9) == [(rows["dog.jpg"], 0.75)]
    assert store.find_tagged(animal, 3, 5) == [] and store.count_tagged([["n9-none"]]) == 0


def test_the_quick_check_counts_images_without_vectors_and_vectors_without_images(tag_store):
    from index_store.catalog import CatalogReader
    from index_store.check import quick

    store, rows = tag_store
    with sqlite3.connect(store.index_dir / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM vectors WHERE id = ?", (rows["dog.jpg"],))
        conn.execute("INSERT INTO vectors (id, data) VALUES (?, ?)", (max(rows.values()) + 7, bytes(8)))
    with CatalogReader.open(store.index_dir) as reader:
        found = {problem.detail for problem in quick(reader)}
    assert found == {"1 of 3 images have no stored vector", "1 stored vectors belong to no image"}


class InProcessPool:
    """Workers in this process, answering in the reverse order of submission (as a slow first worker would)."""

    def __init__(self, spec, size: int = 2) -> None:
        from indexer.ray_index import EmbedWorker

        self.workers = [EmbedWorker(spec) for _ in range(size)]
        self.size = size
        self._answers: dict[int, dict] = {}
        self.calls: list[int] = []

    def submit(self, worker: int, paths: list[str]) -> int:
        handle = len(self.calls)
        self.calls.append(worker)
        self._answers[handle] = self.workers[worker].embed(paths)
        return handle

    def wait_one(self, pending: list[int]) -> tuple[int, dict]:
        last = max(pending)
        return last, self._answers.pop(last)


def test_the_ray_writer_stores_what_a_local_run_stores(tmp_path, photo_tree, weights_file, monkeypatch):
    import indexer.ray_index as ray_index
    from index_store.catalog import CatalogReader
    from index_store.writer import IndexStore, fixed_claim
    from indexer.engines.load import load_embedder
    from indexer.pipeline import IndexRun

    (photo_tree / "broken.jpg").write_bytes(b"not a picture")
    (photo_tree / "copy.jpg").write_bytes((photo_tree / "moon.jpg").read_bytes())
    render_document(np.random.default_rng(1)).save(photo_tree / "page2.png")
    embedder = load_embedder(str(weights_file), runtime="lite")
    monkeypatch.setattr(ray_index, "CHUNK", 3)  # several chunks, answered out of order
    catalogs = {}
    for name in ("local", "workers"):
        index = tmp_path / name
        with IndexStore.open(index, fixed_claim(embedder.model_id, embedder.dim, "default")) as store:
            if name == "local":
                summary = IndexRun(store, embedder).run([str(photo_tree)])
            else:
                pool = InProcessPool(ray_index.engine_spec(embedder, "lite", 1))
                spec = ray_index.engine_spec(embedder, "lite", 1)
                summary = ray_index.RayIndexRun(store, embedder, spec, pool=pool).run([str(photo_tree)])
                assert len(pool.calls) >= 3 and set(pool.calls) == {0, 1}  # work went to both workers
            store.finish()
        assert summary.added == 12 and summary.skipped_total == 1
        with CatalogReader.open(index) as reader:
            rows = {r.path: r for r in reader.rows_page(None, None, 0, 100)[1]}
            vectors = {path: reader.vector(row.id) for path, row in rows.items()}
        catalogs[name] = (rows, vectors)
    (local_rows, local_vectors), (rows, vectors) = catalogs["local"], catalogs["workers"]
    assert set(rows) == set(local_rows)
    for path, row in rows.items():
        assert (row.hash, row.category) == (local_rows[path].hash, local_rows[path].category)
        assert float(vectors[path] @ local_vectors[path]) > 0.9999
