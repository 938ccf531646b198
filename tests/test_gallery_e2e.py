"""End to end on the real development gallery in ../shared (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import GALLERY, run_cbir

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not GALLERY.is_dir(), reason="../shared/data/gallery is not present")]

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
    from index_store.catalog import CatalogReader

    reader = CatalogReader.open(Path(cli_env["CBIR_HOME"]) / "index")
    ids, vectors = zip(*reader.iter_vectors(), strict=True)
    ids, vectors = np.concatenate(ids), np.concatenate(vectors)
    rows = reader.rows_by_ids([int(i) for i in ids])
    reader.close()
    labels = np.array([Path(rows[int(i)].path).parent.name for i in ids])

    # Categories were stored at index time by the default model. It was trained on 85% of these
    # images, so this is a check that indexing stores them, not a measure of the model (see its
    # model card for the held-out test figures).
    stored = np.array([rows[int(i)].category for i in ids])
    assert (stored == labels).mean() >= 0.95
    assert all(rows[int(i)].category_probs.keys() == {*CATEGORIES, "other"} for i in ids)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top5 = np.argsort(-sims, axis=1)[:, :5]
    precision5 = (labels[top5] == labels[:, None]).mean(axis=1)
    for category in CATEGORIES:
        mean = precision5[labels == category].mean()
        assert mean >= 0.8, (category, mean)


def test_gallery_clean_screenshots_then_undo(tmp_path, cli_env):
    """The Gallery Cleaner's job on a copy of the whole gallery mixed into one flat folder."""
    import hashlib
    import shutil

    flat = tmp_path / "phone-backup"
    flat.mkdir()
    truth = {}
    for i, path in enumerate(sorted(p for c in CATEGORIES for p in (GALLERY / c).iterdir() if p.is_file())):
        name = f"IMG_{i:04d}{path.suffix.lower()}"  # names say nothing about the category
        shutil.copy2(path, flat / name)
        truth[name] = path.parent.name
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in flat.iterdir()}
    assert run_cbir(["index", str(flat), "-q"], cli_env).returncode == 0

    proc = run_cbir(["clean", "--category", "screenshot", "--yes", "--json", "-q"], cli_env)
    assert proc.returncode == 0, proc.stderr
    moved = [Path(m["path"]).name for m in json.loads(proc.stdout)["moves"]]
    screenshots = [n for n, c in truth.items() if c == "screenshot"]
    precision = sum(truth[n] == "screenshot" for n in moved) / len(moved)
    recall = sum(n in moved for n in screenshots) / len(screenshots)
    print(f"clean --category screenshot: moved {len(moved)}, precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.8
    assert all((flat / "screenshot" / n).exists() for n in moved)

    assert run_cbir(["undo", "--yes", "-q"], cli_env).returncode == 0
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in flat.iterdir() if p.is_file()}
    assert after == before
