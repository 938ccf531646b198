"""Embed a folder-per-class dataset in memory (for evaluation and benchmarks)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cbir.errors import ImageDecodeError, UsageError
from indexer.loader import load_image, supported_extensions
from indexer.walker import FileEntry, walk_images


@dataclass
class LabelledEmbeddings:
    vectors: np.ndarray
    labels: list[str]
    paths: list[str]
    category_probs: np.ndarray | None  # (N, classes) when the model has a category head
    skipped: list[tuple[str, str]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # content hash per embedded image


def list_labelled_images(root: Path) -> list[tuple[str, str]]:
    """(path, class) for every image in ``root/<class>/...``; classes are the subfolders."""
    if not root.is_dir():
        raise UsageError(f"dataset folder {root} does not exist")
    items: list[tuple[str, str]] = []
    extensions = supported_extensions()
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in walk_images(str(class_dir), extensions):
            if isinstance(entry, FileEntry):
                items.append((entry.path, class_dir.name))
    if not items:
        raise UsageError(f"no images found in class subfolders of {root}")
    return items


def embed_labelled(
    items: list[tuple[str, str]], embedder, batch_size: int = 32, workers: int = 2,
    on_progress: Callable[[int], None] | None = None,
) -> LabelledEmbeddings:
    vectors, probs, labels, paths, skipped, digests = [], [], [], [], [], []

    def load(item):
        try:
            return item, load_image(item[0]), None
        except ImageDecodeError as exc:
            return item, None, exc.reason

    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(items), batch_size):
            batch = list(pool.map(load, items[start : start + batch_size]))
            good = [(item, loaded) for item, loaded, _ in batch if loaded is not None]
            skipped += [(item[0], reason) for item, px, reason in batch if px is None]
            if good:
                result = embedder.embed(np.stack([pixels for _, (pixels, _) in good]))
                vectors.append(result.vectors)
                if result.category_probs is not None:
                    probs.append(result.category_probs)
                paths += [item[0] for item, _ in good]
                labels += [item[1] for item, _ in good]
                digests += [digest for _, (_, digest) in good]
            if on_progress:
                on_progress(len(batch))
    return LabelledEmbeddings(
        np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), np.float32),
        labels, paths,
        np.concatenate(probs) if probs else None,
        skipped,
        digests,
    )
