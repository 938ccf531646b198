"""A stratified, seeded train/validation/test split, recorded by relative path.

Each class is shuffled with its own seeded generator and cut by the fractions,
so a class's split does not depend on the other classes, and the same data,
seed and fractions always give the same split. Every class keeps at least one
training image, and at least one validation and test image once it has three.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.errors import UsageError

SPLIT_FILE = "split.json"


@dataclass
class Split:
    seed: int
    val_fraction: float
    test_fraction: float
    train: list[str]
    val: list[str]
    test: list[str]
    # relpath -> content hash, so an evaluation can recognise training images under any name
    hashes: dict[str, str] = field(default_factory=dict)

    def hashes_of(self, *parts: str) -> set[str]:
        return {self.hashes[p] for part in parts for p in getattr(self, part) if p in self.hashes}

    def indices(self, relpaths: list[str]) -> dict[str, list[int]]:
        where = {p: i for i, p in enumerate(relpaths)}
        return {name: [where[p] for p in getattr(self, name)] for name in ("train", "val", "test")}

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def as_dict(self) -> dict:
        return {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "train": self.train, "val": self.val, "test": self.test, "hashes": self.hashes}

    def save(self, directory: Path) -> Path:
        path = directory / SPLIT_FILE
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> Split:
        data = json.loads((directory / SPLIT_FILE).read_text())
        return cls(int(data["seed"]), float(data["val_fraction"]), float(data["test_fraction"]),
                   list(data["train"]), list(data["val"]), list(data["test"]), dict(data.get("hashes", {})))


def stratified_split(
    relpaths: list[str], labels: list[str], *, val_fraction: float = 0.15, test_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError("--val-fraction and --test-fraction must be in [0, 1) and sum to less than 1")
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    by_class: dict[str, list[str]] = {}
    for path, label in zip(relpaths, labels, strict=True):
        by_class.setdefault(label, []).append(path)
    for label, paths in sorted(by_class.items()):
        paths = sorted(paths)
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = [paths[i] for i in rng.permutation(len(paths))]
        n = len(order)
        n_test = _share(n, test_fraction)
        n_val = _share(n, val_fraction)
        while n_test + n_val > n - 1:  # always leave one image to train on
            if n_val >= n_test and n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
        test += order[:n_test]
        val += order[n_test : n_test + n_val]
        train += order[n_test + n_val :]
    return Split(seed, val_fraction, test_fraction, sorted(train), sorted(val), sorted(test))


def _share(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(n * fraction)) if n >= 3 else 0
