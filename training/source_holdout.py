"""Leave one source out: how a category head does on photos from a source it never saw.

Public packages share photos, and photos of one source look alike (one photographer, one camera, one
renderer), so a random split flatters a model. Here every photo of one source is held out at a time: the
head is fitted, as `cbir train --fine-tune head` fits it, on the features of every other source's photos
(a fifth of them kept for its temperature and gate), and predicts the held-out source's. Pooled over
the folds, every photo is predicted by a head that never saw its source. A photo's source comes from a
``manifest.csv`` beside the data (``path`` relative to the folder it sits in, and a ``source`` column), as
the development sets and the photo scripts in benchmarks/ write it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.errors import UsageError
from indexer.categorizer import OTHER
from training.head import fit_categorizer

VALIDATION_SHARE = 0.2


def read_sources(folders: list[Path], column: str = "source") -> dict[str, str]:
    """{absolute path: source} from each folder's ``manifest.csv``; UsageError when a folder has none."""
    found: dict[str, str] = {}
    for folder in folders:
        manifest = folder / "manifest.csv"
        if not manifest.is_file():
            raise UsageError(f"--group-by {column} needs {manifest}: a CSV with 'path' (relative to {folder}) "
                             f"and '{column}' columns")
        with open(manifest, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if column not in row or "path" not in row:
                    raise UsageError(f"{manifest} has no '{column}' or 'path' column")
                found[str((folder / row["path"]).resolve())] = row[column]
    return found


@dataclass
class HeldOut:
    """The pooled predictions of every fold, and each fold's source."""

    labels: list[str]
    probs: np.ndarray  # (N, len(outputs)), each row from the fold that held its photo out
    outputs: list[str]
    sources: list[str]


def leave_one_source_out(vectors: np.ndarray, labels: list[str], sources: list[str], classes: list[str],
                         digests: list[str] | None = None, seed: int = 0,
                         scene: tuple[np.ndarray, np.ndarray] | None = None) -> HeldOut:
    """Every photo predicted by a head fitted without any photo of its source, nor any copy of one (a photo
    of another source with the same content digest: packages share photos)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(sources))
    source_arr, label_arr = np.asarray(sources), np.asarray(labels)
    digest_arr = np.asarray(digests if digests is not None else [""] * len(labels))
    outputs = [*classes, OTHER]  # the energy gate says "other" even when no photo is labelled so
    probs = np.zeros((len(labels), len(outputs)), np.float32)
    for name in names:
        held = source_arr == name
        copies = np.isin(digest_arr, digest_arr[held]) if digests is not None else np.zeros_like(held)
        train = np.flatnonzero(~held & ~copies)
        if not len(train) or len(set(label_arr[train]) & set(classes)) < 1:
            raise UsageError(f"leaving out source {name!r} leaves too few classes to train on")
        val = train[rng.random(len(train)) < VALIDATION_SHARE]
        fit = np.setdiff1d(train, val)
        # A class whose every photo is from the held-out source cannot be learned: its column stays 0.
        present = [c for c in classes if c in set(label_arr[fit])]
        categorizer = fit_categorizer(vectors[fit], list(label_arr[fit]), vectors[val], list(label_arr[val]),
                                      present, scene=scene)
        fold = categorizer.probabilities(vectors[held])
        for j, name_out in enumerate(categorizer.outputs):
            probs[held, outputs.index(name_out)] = fold[:, j]
    return HeldOut(list(labels), probs, outputs, list(sources))


def per_source(held: HeldOut, threshold: float) -> list[dict]:
    """For each held-out source: its photos, their true classes, and what a clean at ``threshold`` did."""
    predicted = np.asarray(held.outputs)[held.probs.argmax(axis=1)]
    confidence = held.probs.max(axis=1)
    moved = (predicted != OTHER) & (confidence >= threshold)
    rows = []
    for name in sorted(set(held.sources)):
        mine = np.asarray(held.sources) == name
        truth = np.asarray(held.labels)[mine]
        right = moved[mine] & (predicted[mine] == truth)
        known = truth != OTHER
        rows.append({
            "source": name, "photos": int(mine.sum()),
            "classes": {c: int(n) for c, n in zip(*np.unique(truth, return_counts=True), strict=True)},
            "recall": round(float(right[known].mean()), 4) if known.any() else None,
            "moved_wrongly": int((moved[mine] & (predicted[mine] != truth)).sum()),
            "other_moved": round(float(moved[mine][~known].mean()), 4) if (~known).any() else None,
        })
    return rows
