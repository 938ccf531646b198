"""Leave one source out, the macro average over the classes present, and precision-recall curves (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.errors import UsageError
from training.classification_metrics import classification_report
from training.open_set_metrics import pr_curves
from training.source_holdout import leave_one_source_out, per_source, read_sources


def _around(direction: int, n: int, rng: np.random.Generator, dim: int = 32) -> np.ndarray:
    x = rng.normal(0, 0.15, (n, dim))
    x[:, direction] += 1.0
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _world(rng: np.random.Generator):
    """Classes a, b and "other" in three sources; source s1 also holds three odd 'b' photos (direction 5)
    that source s2 has copies of."""
    vectors, labels, sources, digests = [], [], [], []
    for source in ("s1", "s2", "s3"):
        for label, direction in (("a", 0), ("b", 1), ("other", 2)):
            vectors.append(_around(direction, 8, rng))
            labels += [label] * 8
            sources += [source] * 8
            digests += [f"{source}-{label}-{i}" for i in range(8)]
    odd = _around(5, 3, rng)
    for source in ("s1", "s2"):  # the same three files, shipped by two sources
        vectors.append(odd)
        labels += ["b"] * 3
        sources += [source] * 3
        digests += [f"odd-{i}" for i in range(3)]
    return np.concatenate(vectors).astype(np.float32), labels, sources, digests


def test_a_source_is_predicted_by_a_head_that_never_saw_it_nor_its_copies():
    vectors, labels, sources, digests = _world(np.random.default_rng(0))
    odd_in_s1 = [i for i, d in enumerate(digests) if d.startswith("odd") and sources[i] == "s1"]

    held = leave_one_source_out(vectors, labels, sources, ["a", "b"], digests)
    assert held.outputs == ["a", "b", "other"] and held.probs.shape == (len(labels), 3)
    assert np.allclose(held.probs.sum(axis=1), 1.0, atol=1e-4)
    predicted = np.asarray(held.outputs)[held.probs.argmax(axis=1)]
    plain = [i for i, d in enumerate(digests) if not d.startswith("odd")]
    assert np.mean(predicted[plain] == np.asarray(labels)[plain]) >= 0.8
    # Their copies in s2 were left out of s1's fold: nothing taught the head that direction 5 is 'b'.
    b = held.outputs.index("b")
    assert held.probs[odd_in_s1, b].max() < 0.7

    leaky = leave_one_source_out(vectors, labels, sources, ["a", "b"])  # no digests: the copies train the head
    assert leaky.probs[odd_in_s1, b].mean() > held.probs[odd_in_s1, b].max() + 0.3


def test_a_class_only_one_source_has_cannot_be_learned_when_that_source_is_held_out():
    rng = np.random.default_rng(1)
    vectors = np.concatenate([_around(0, 10, rng), _around(1, 10, rng), _around(2, 10, rng)]).astype(np.float32)
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    sources = ["s1"] * 5 + ["s2"] * 5 + ["s1"] * 5 + ["s2"] * 5 + ["s3"] * 10  # only s3 has 'c'
    held = leave_one_source_out(vectors, labels, sources, ["a", "b", "c"])
    assert np.all(held.probs[20:, held.outputs.index("c")] == 0.0)
    rows = {row["source"]: row for row in per_source(held, 0.7)}
    assert rows["s3"]["recall"] == 0.0 and rows["s3"]["photos"] == 10 and rows["s3"]["classes"] == {"c": 10}
    assert rows["s1"]["recall"] >= 0.8


def test_sources_come_from_each_folders_manifest(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.csv").write_text("path,source\nfood/x.jpg,npm:pics 1\nfood/y.jpg,deb:z 2\n")
    found = read_sources([tmp_path / "data"])
    assert found == {str((tmp_path / "data" / "food" / "x.jpg").resolve()): "npm:pics 1",
                     str((tmp_path / "data" / "food" / "y.jpg").resolve()): "deb:z 2"}
    with pytest.raises(UsageError, match=r"manifest\.csv"):
        read_sources([tmp_path])
    (tmp_path / "manifest.csv").write_text("path,licence\nx.jpg,MIT\n")
    with pytest.raises(UsageError, match="no 'source'"):
        read_sources([tmp_path])


def test_the_macro_average_leaves_out_classes_the_data_has_no_photo_of():
    truth = ["a", "a", "b", "b"]
    report = classification_report(truth, ["a", "a", "b", "a"], ["a", "b", "other"])
    d = report.as_dict()
    assert d["absent_classes"] == ["other"] and d["macro_avg_over"] == ["a", "b"]
    f1_a, f1_b = 2 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 / 1.5
    assert d["macro_avg"]["f1"] == pytest.approx((f1_a + f1_b) / 2, abs=1e-4)
    assert "left out of the macro average" in report.table()


def test_precision_recall_curves_count_what_a_clean_would_move():
    outputs = ["a", "b", "other"]
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
    curves = pr_curves(["a", "a", "b", "other"], probs, outputs, thresholds=(0.5, 0.7, 0.85))
    assert set(curves) == {"a", "b"}
    assert curves["a"] == [{"threshold": 0.5, "precision": round(2 / 3, 4), "recall": 1.0, "moved": 3},
                           {"threshold": 0.7, "precision": 0.5, "recall": 0.5, "moved": 2},
                           {"threshold": 0.85, "precision": 1.0, "recall": 0.5, "moved": 1}]
    assert curves["b"][0] == {"threshold": 0.5, "precision": None, "recall": 0.0, "moved": 0}
