"""Frozen-trunk features, computed once: what makes `head` training take seconds on a CPU.

Training images get ``copies`` augmented variants each on top of the
original, so the head still sees augmentation although the trunk runs only
(1 + copies) times per image instead of once per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.augment import augment
from training.data_check import DatasetCheck


@dataclass
class Features:
    vectors: np.ndarray  # (N, 2048) unit length
    labels: np.ndarray  # (N,) class indices
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.vectors) / self.seconds if self.seconds else 0.0


def extract_features(
    embedder,
    data: DatasetCheck,
    indices: list[int],
    class_index: dict[str, int],
    *,
    copies: int = 0,
    augmenter=None,
    batch_size: int = 32,
    on_progress: Callable[[int], object] | None = None,
) -> Features:
    started = time.perf_counter()
    vectors: list[np.ndarray] = []
    labels: list[int] = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        pixels = data.load_pixels(chunk)
        chunk_labels = [class_index[data.images[i].label] for i in chunk]
        variants = [pixels] + [augment(augmenter, pixels) for _ in range(copies if augmenter else 0)]
        for variant in variants:
            vectors.append(embedder.embed(variant).vectors)
            labels += chunk_labels
            if on_progress:
                on_progress(len(chunk))
    dim = getattr(embedder, "dim", 2048)
    return Features(
        np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
        np.asarray(labels, dtype=np.int64),
        time.perf_counter() - started,
    )
