"""Check a folder-per-class dataset before training: every file decoded once, classes counted.

Unreadable files are reported and left out (never touched on disk); classes
with too few images are reported and left out. The decoded 224x224 pixels
are kept in memory when they fit, so training does not decode twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.errors import UsageError
from indexer.categorizer import OTHER
from indexer.labelled import class_folders, list_images, list_labelled_images
from indexer.loader import load_image, load_many

# Decoded images kept in memory up to this size (150 KB each at 224x224x3).
PIXEL_CACHE_BYTES = 2 << 30


@dataclass
class LabelledImage:
    path: str  # absolute
    relpath: str  # relative to the dataset root, '/'-separated: how splits record it
    label: str
    digest: str


@dataclass
class DatasetCheck:
    root: Path
    images: list[LabelledImage]
    classes: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    too_small: dict[str, int] = field(default_factory=dict)  # class -> images, left out
    ignored_folders: list[tuple[str, str]] = field(default_factory=list)  # (folder, why it is not a class)
    pixels: np.ndarray | None = None  # (N, 224, 224, 3) uint8, aligned with images, when it fits

    @property
    def counts(self) -> dict[str, int]:
        """Images per class, and per "other" (the negatives) when there are some."""
        counts = dict.fromkeys(self.classes, 0)
        for image in self.images:
            counts[image.label] = counts.get(image.label, 0) + 1
        return counts

    @property
    def has_other(self) -> bool:
        return any(image.label == OTHER for image in self.images)

    @property
    def data_hash(self) -> str:
        """Identifies the exact data trained on: paths, labels and file contents."""
        digest = hashlib.sha256()
        for image in sorted(self.images, key=lambda i: i.relpath):
            digest.update(f"{image.relpath}\t{image.label}\t{image.digest}\n".encode())
        return digest.hexdigest()

    def load_pixels(self, indices: list[int] | np.ndarray) -> np.ndarray:
        if self.pixels is not None:
            return self.pixels[np.asarray(indices, dtype=int)]
        return np.stack([load_image(self.images[i].path)[0] for i in indices])

    def summary(self) -> dict:
        return {
            "root": str(self.root),
            "images": len(self.images),
            "classes": self.counts,
            "unreadable": len(self.problems),
            "left_out_classes": self.too_small,
            "left_out_folders": dict(self.ignored_folders),
            "data_hash": self.data_hash,
        }


def check_dataset(
    root: str | os.PathLike[str],
    *,
    other: list[str | os.PathLike[str]] | None = None,
    min_per_class: int = 5,
    workers: int | None = None,
    on_progress: Callable[[int], object] | None = None,
    keep_pixels: bool = True,
) -> DatasetCheck:
    """Decode every image under ``root/<class>/``; raise UsageError if fewer than two classes remain.

    Photos of none of the classes (negatives) are labelled "other": those in a class folder literally
    named ``other``, and every image under each folder of ``other`` (any depth), recorded in splits as
    ``@other<N>/<path inside it>``.
    """
    root = Path(root).expanduser().resolve()
    ignored = class_folders(root)[1]
    items = list_labelled_images(root)
    relpaths = {path: Path(path).relative_to(root).as_posix() for path, _ in items}
    for n, folder in enumerate(Path(f).expanduser().resolve() for f in other or []):
        negatives = list_images(folder)
        if not negatives:
            raise UsageError(f"no images found under {folder} (--other)")
        items += [(path, OTHER) for path in negatives if path not in relpaths]
        relpaths.update({path: f"@other{n}/{Path(path).relative_to(folder).as_posix()}" for path in negatives})
    keep = keep_pixels and len(items) * 224 * 224 * 3 <= PIXEL_CACHE_BYTES

    good: list[LabelledImage] = []
    arrays: list[np.ndarray] = []
    problems: list[tuple[str, str]] = []
    label_of = dict(items)
    for loaded in load_many([path for path, _ in items], workers or max(2, os.cpu_count() or 2)):
        if loaded.pixels is None:
            problems.append((loaded.path, loaded.problem or "unreadable"))
        else:
            good.append(LabelledImage(loaded.path, relpaths[loaded.path], label_of[loaded.path], loaded.digest or ""))
            if keep:
                arrays.append(loaded.pixels)
        if on_progress:
            on_progress(1)
    counts: dict[str, int] = {}
    for image in good:
        counts[image.label] = counts.get(image.label, 0) + 1
    too_small = {c: n for c, n in sorted(counts.items()) if n < min_per_class}
    # Classes whose every file was unreadable count as too small too.
    for _, label in items:
        if label not in counts:
            too_small[label] = 0
    classes = sorted(c for c in counts if c not in too_small and c != OTHER)
    if len(classes) < 2:
        raise UsageError(
            f"{root} needs at least two classes with {min_per_class}+ readable images each; found "
            + (", ".join(f"{c}: {n}" for c, n in sorted({**counts, **too_small}.items())) or "none")
        )
    kept = [i for i, image in enumerate(good) if image.label in classes or (image.label == OTHER
                                                                           and OTHER not in too_small)]
    pixels = np.stack([arrays[i] for i in kept]) if keep and kept else None
    return DatasetCheck(root, [good[i] for i in kept], classes, problems, too_small, ignored_folders=ignored,
                        pixels=pixels)
