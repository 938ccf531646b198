"""A head that reads ImageNet's class scores beside the embedding: its features, its file, its fit (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.errors import ModelError
from indexer.categorizer import CATEGORIZER_FILE, Categorizer, head_features, load_categorizer
from training.head import fit_categorizer


def _scene(rng: np.random.Generator, dim: int = 16, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0, 0.2, (dim, classes)).astype(np.float32), rng.normal(0, 0.1, classes).astype(np.float32)


def test_head_features_put_the_unit_embedding_beside_the_scene_scores():
    rng = np.random.default_rng(0)
    scene = _scene(rng)
    vectors = rng.normal(0, 1, (5, 16)).astype(np.float32) * 7.0  # any length: only the direction counts
    plain = head_features(vectors, None)
    both = head_features(vectors, scene)
    assert plain.shape == (5, 16) and both.shape == (5, 26)
    assert np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    assert np.allclose(both[:, :16] * np.sqrt(2), plain, atol=1e-5)  # the two blocks weigh the same
    # The scene block follows the ImageNet class the embedding points at most.
    top = np.argmax(plain @ scene[0] * 38.0 + scene[1], axis=1)
    assert np.array_equal(np.argmax(both[:, 16:], axis=1), top)


def test_a_scene_head_survives_its_file_and_an_old_file_still_loads(tmp_path):
    rng = np.random.default_rng(1)
    scene = _scene(rng)
    head = Categorizer(["a", "b"], rng.normal(0, 1, (26, 3)).astype(np.float32), np.zeros(3, np.float32),
                       ["a", "b", "other"], 16.0, 1.3, -5.0, {"name": "test"}, scene)
    head.save(tmp_path / CATEGORIZER_FILE)
    loaded = load_categorizer(tmp_path, ["a", "b"])
    assert loaded.scene is not None and loaded.scene[0].shape == (16, 10)
    x = rng.normal(0, 1, (8, 16)).astype(np.float32)
    assert np.allclose(loaded.probabilities(x), head.probabilities(x), atol=2e-3)  # the kernel is stored in f16

    old = Categorizer(["a", "b"], rng.normal(0, 1, (16, 3)).astype(np.float32), np.zeros(3, np.float32),
                      ["a", "b", "other"], 16.0)
    old.save(tmp_path / CATEGORIZER_FILE)
    with np.load(tmp_path / CATEGORIZER_FILE) as data:
        assert "scene_kernel" not in data.files and b'"format": 1' in bytes(data["meta"])
    assert load_categorizer(tmp_path, ["a", "b"]).scene is None


def test_a_head_whose_weights_do_not_fit_its_scene_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    Categorizer(["a"], rng.normal(0, 1, (20, 2)).astype(np.float32), np.zeros(2, np.float32), ["a", "other"],
                16.0, scene=_scene(rng)).save(tmp_path / CATEGORIZER_FILE)
    with pytest.raises(ModelError, match="wrong shape"):
        load_categorizer(tmp_path, ["a"])


def test_a_fitted_scene_head_says_what_it_reads():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.2, (20, 16)) + np.eye(16)[i] for i in (0, 1, 2)]).astype(np.float32)
    y = ["a"] * 20 + ["b"] * 20 + ["other"] * 20
    head = fit_categorizer(x[::2], y[::2], x[1::2], y[1::2], ["a", "b"], scene=_scene(rng))
    assert head.scene is not None and head.weights.shape == (26, 3)
    assert head.method["inputs"] == "embedding + ImageNet log-probabilities"
    assert "ImageNet's class scores" in head.method["name"]
    predicted = np.asarray(head.outputs)[head.probabilities(x[1::2]).argmax(axis=1)]
    assert np.mean(predicted == np.asarray(y[1::2])) >= 0.8
