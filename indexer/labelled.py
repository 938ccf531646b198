"""Embed a folder-per-class dataset in memory (for evaluation and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.errors import UsageError
from indexer.loader import Loaded, load_many, supported_extensions
from indexer.model import class_name_problem
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

    if not root.is_dir():
        raise UsageError(f"dataset folder {root} does not exist")
    usable: list[Path] = []
    ignored: list[tuple[str, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        problem = None if folder.name == "other" else class_name_problem(folder.name)  # "other": the negatives
        if problem:
            ignored.append((folder.name, problem))
        else:
            usable.append(folder)
    return usable, ignored


def list_images(folder: Path) -> list[str]:
    """Every image under ``folder`` (any depth), sorted."""
    return [entry.path for entry in walk_images(str(folder), supported_extensions()) if isinstance(entry, FileEntry)]


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
    on_progress: Callable[[int], object] | None = None,
) -> LabelledEmbeddings:
    vectors: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    labels: list[str] = []
    paths: list[str] = []
    skipped: list[tuple[str, str]] = []
    digests: list[str] = []
    label_of = dict(items)
    batch: list[Loaded] = []

    def flush() -> None:
        result = embedder.embed(np.stack([b.pixels for b in batch if b.pixels is not None]))
        vectors.append(result.vectors)
        if result.category_probs is not None:
            probs.append(result.category_probs)
        paths.extend(b.path for b in batch)
        labels.extend(label_of[b.path] for b in batch)
        digests.extend(b.digest or "" for b in batch)
        batch.clear()

    for loaded in load_many([path for path, _ in items], workers):
        if loaded.pixels is None:
            skipped.append((loaded.path, loaded.reason or "unreadable"))
        else:
            batch.append(loaded)
            if len(batch) == batch_size:
                flush()
        if on_progress:
            on_progress(1)
    if batch:
        flush()
    return LabelledEmbeddings(
        np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), np.float32),
        labels, paths,
        np.concatenate(probs) if probs else None,
        skipped,
        digests,
    )
