from collections import Counter

import pytest

from cbir.errors import UsageError
from training.split import Split, stratified_split


def _data():
    labels = ["food"] * 40 + ["people"] * 10 + ["receipt"] * 3 + ["tiny"] * 2
    paths = [f"{label}/{i:03d}.jpg" for i, label in enumerate(labels)]
    return paths, labels


def test_split_is_stratified_and_covers_every_image_once():
    paths, labels = _data()
    split = stratified_split(paths, labels, val_fraction=0.2, test_fraction=0.25, seed=7)
    assert sorted(split.train + split.val + split.test) == sorted(paths)
    label_of = dict(zip(paths, labels, strict=True))
    test = Counter(label_of[p] for p in split.test)
    val = Counter(label_of[p] for p in split.val)
    assert test["food"] == 10 and val["food"] == 8  # 25% and 20% of 40
    assert test["people"] == 2 or test["people"] == 3
    assert test["receipt"] == 1 and val["receipt"] == 1  # 3 images: one each
    assert test["tiny"] == 0 and val["tiny"] == 0  # 2 images: both kept for training
    assert all(Counter(label_of[p] for p in split.train)[c] >= 1 for c in set(labels))


def test_split_is_reproducible_and_depends_on_the_seed(tmp_path):
    paths, labels = _data()
    first = stratified_split(paths, labels, seed=3)
    again = stratified_split(list(reversed(paths)), list(reversed(labels)), seed=3)
    other = stratified_split(paths, labels, seed=4)
    assert first == again
    assert first.test != other.test
    first.save(tmp_path)
    assert Split.load(tmp_path) == first


def test_bad_fractions_are_refused():
    paths, labels = _data()
    with pytest.raises(UsageError):
        stratified_split(paths, labels, val_fraction=0.6, test_fraction=0.5)
