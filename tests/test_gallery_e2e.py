"""End to end on the real development gallery in ../shared (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import GALLERY, run_cbir

pytestmark = pytest.mark.skipif(not GALLERY.is_dir(), reason="../shared/data/gallery is not present")

CATEGORIES = ("receipt", "screenshot", "people", "food", "landscape")


def test_gallery_queries_return_mostly_their_own_category(cli_env):
    proc = run_cbir(["index", str(GALLERY), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] > 200

    # Through the CLI: the first image (by name) of each category queries the index.
    majority = {}
    for category in CATEGORIES:
        query = sorted((GALLERY / category).iterdir())[0]
        out = run_cbir(["query", str(query), "-k", "5", "--exclude-self", "--json"], cli_env)
        assert out.returncode == 0, out.stderr
        hits = json.loads(out.stdout)
        assert len(hits) == 5
        majority[category] = sum(Path(h["path"]).parent.name == category for h in hits) >= 3
    # About 2% of gallery images have a minority of same-category neighbours (see below),
    # so one of the five may miss.
    assert sum(majority.values()) >= 4, majority

    # Over every indexed image, from the vectors stored in the real index.
    from index_store import IndexReader

    reader = IndexReader.open(Path(cli_env["CBIR_HOME"]) / "index")
    ids, vectors = zip(*reader.iter_vectors())
    ids, vectors = np.concatenate(ids), np.concatenate(vectors)
    rows = reader.rows_by_ids([int(i) for i in ids])
    reader.close()
    labels = np.array([Path(rows[int(i)].path).parent.name for i in ids])

    # Categories were stored at index time by the default model. It was trained on 85% of these
    # images, so this is a check that indexing stores them, not a measure of the model (see its
    # model card for the held-out test figures).
    stored = np.array([rows[int(i)].category for i in ids])
    assert (stored == labels).mean() >= 0.95
    assert all(json.loads(rows[int(i)].category_probs).keys() == set(CATEGORIES) for i in ids)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top5 = np.argsort(-sims, axis=1)[:, :5]
    precision5 = (labels[top5] == labels[:, None]).mean(axis=1)
    for category in CATEGORIES:
        mean = precision5[labels == category].mean()
        assert mean >= 0.8, (category, mean)
