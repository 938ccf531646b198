"""End to end on the real development gallery in ../shared (skipped when it is absent)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.conftest import GALLERY, run_cbir

pytestmark = pytest.mark.skipif(not GALLERY.is_dir(), reason="../shared/data/gallery is not present")

CATEGORIES = ("receipt", "screenshot", "people", "food", "landscape")


def test_gallery_queries_return_mostly_their_own_category(cli_env):
    proc = run_cbir(["index", str(GALLERY), "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["added"] > 200
    agreeing = Counter()
    for category in CATEGORIES:
        query = sorted((GALLERY / category).iterdir())[0]
        out = run_cbir(["query", str(query), "-k", "5", "--exclude-self", "--json"], cli_env)
        assert out.returncode == 0, out.stderr
        hits = json.loads(out.stdout)
        assert len(hits) == 5
        same = sum(h["path"].split("/")[-2] == category for h in hits)
        agreeing[category] = same
        assert same >= 3, (category, [h["path"] for h in hits])
