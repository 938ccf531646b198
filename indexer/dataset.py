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


def class_folders(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The subfolders of ``root`` that can be classes, and (name, why not) for those that cannot.

    A class name becomes a folder name when cleaning, so the rule is the one every model's classes
    follow (indexer.model.class_name_problem); hidden folders are never classes.
    """
    from indexer.model import class_name_problem

    if not root.is_dir():
        raise UsageError(f"dataset folder {root} does not exist")
    usable: list[Path] = []
    ignored: list[tuple[str, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        problem = class_name_problem(folder.name)
        if problem:
            ignored.append((folder.name, problem))
        else:
            usable.append(folder)
    return usable, ignored


def list_labelled_images(root: Path) -> list[tuple[str, str]]:
    """(path, class) for every image in ``root/<class>/...``; classes are the usable subfolders."""
    items: list[tuple[str, str]] = []
    extensions = supported_extensions()
    for class_dir in class_folders(root)[0]:
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
