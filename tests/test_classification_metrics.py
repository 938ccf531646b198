import pytest

from training.classification_metrics import classification_report


def test_figures_match_a_hand_computation():
    # cat: 3 true, predicted cat/cat/dog; dog: 2 true, predicted dog/cat; bird: 1 true, predicted dog.
    y_true = ["cat", "cat", "cat", "dog", "dog", "bird"]
    y_pred = ["cat", "cat", "dog", "dog", "cat", "dog"]
    report = classification_report(y_true, y_pred, ["cat", "dog", "bird"])
    cat, dog, bird = (report.per_class[c] for c in ("cat", "dog", "bird"))
    # cat: TP 2, FP 1 (a dog), FN 1 -> P 2/3, R 2/3
    assert cat["precision"] == pytest.approx(2 / 3) and cat["recall"] == pytest.approx(2 / 3)
    # dog: TP 1, FP 2 (a cat, the bird), FN 1 -> P 1/3, R 1/2, F1 = 2PR/(P+R) = 0.4
    assert dog["precision"] == pytest.approx(1 / 3) and dog["recall"] == pytest.approx(0.5)
    assert dog["f1"] == pytest.approx(0.4)
    assert bird == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.macro["f1"] == pytest.approx((2 / 3 + 0.4 + 0) / 3)
    assert report.weighted["recall"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 0) / 6)
    assert report.confusion == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    table = report.table()
    assert "macro avg" in table and "weighted avg" in table and "accuracy" in table
    assert report.confusion_table().splitlines()[1].split() == ["cat", "2", "1", "0"]
