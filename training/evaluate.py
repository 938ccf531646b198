"""`cbir evaluate`: classification and retrieval quality of a model on a folder-per-class dataset.

Classification covers the images whose class the model knows and that did
not train it: images whose content matches the model's recorded training or
validation split are left out, so on the training data itself only the
recorded test split is classified (anything else would grade the model on
images it learned from).
Retrieval is leave-one-out over every readable image of the dataset, with the
model's pooled features as the embedding.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import UsageError
from indexer.categorizer import OTHER
from indexer.labelled import embed_labelled, list_images, list_labelled_images
from indexer.loader import load_many
from indexer.model import ModelRef
from training.classification_metrics import ClassificationReport, classification_report
from training.open_set_metrics import OpenSetReport, open_set_report
from training.retrieval_metrics import RetrievalReport, leave_one_out
from training.split import SPLIT_FILE, Split


@dataclass
class EvaluationReport:
    data_dir: str
    model: str
    model_id: str
    images: int
    skipped: list[tuple[str, str]]
    classification: ClassificationReport | None
    classification_scope: str
    retrieval: RetrievalReport | None
    notes: list[str] = field(default_factory=list)
    open_set: OpenSetReport | None = None

    def as_dict(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "model": self.model,
            "model_id": self.model_id,
            "images": self.images,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "classification": self.classification.as_dict() if self.classification else None,
            "classification_scope": self.classification_scope,
            "retrieval": self.retrieval.as_dict() if self.retrieval else None,
            "open_set": self.open_set.as_dict() if self.open_set else None,
            "notes": self.notes,
        }

    def text(self) -> str:
        lines = [f"data:   {self.data_dir} ({self.images} images)", f"model:  {self.model} ({self.model_id})", ""]
        if self.classification is not None:
            lines += [f"classification ({self.classification_scope})", self.classification.table(), "",
                      "confusion matrix", self.classification.confusion_table(), ""]
        if self.open_set is not None:
            lines += [self.open_set.table(), ""]
        if self.retrieval is not None:
            r = self.retrieval
            lines += [f"retrieval (leave-one-out, {r.queries} queries"
                      + (f", {r.singletons_left_out} alone in their class not queried" if r.singletons_left_out
                         else "") + ")"]
            lines += [f"{'top-' + str(k):<12}{v:>8.4f}" for k, v in sorted(r.top_k.items())]
            lines += [f"{'mAP@10':<12}{r.map_at_10:>8.4f}", ""]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def evaluate(
    data_dir: str | os.PathLike[str],
    embedder,
    *,
    other: list[str | os.PathLike[str]] | None = None,
    threshold: float = DEFAULT_MIN_CONFIDENCE,
    retrieval: bool = True,
    on_progress: Callable[[int], object] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> EvaluationReport:
    """Classification (over the categories and "other"), open-set figures when photos of none of the
    categories are given (``other`` folders, or a class folder named "other"), and retrieval."""
    root = Path(data_dir).expanduser().resolve()
    items = list_labelled_images(root)
    for folder in other or []:
        items += [(path, OTHER) for path in list_images(Path(folder).expanduser().resolve())]
    model: ModelRef = embedder.model
    notes: list[str] = []
    split = _recorded_split(model)
    trained_on = split.hashes_of("train", "val") if split is not None else set()
    held_back: list[tuple[str, str]] = []  # training images never embedded (classification only)
    if trained_on and not retrieval:
        # Only classification is wanted: hash first, so training images are never decoded.
        digests = _hash_files([p for p, _ in items])
        held_back = [item for item, digest in zip(items, digests, strict=True) if digest in trained_on]
        items = [item for item, digest in zip(items, digests, strict=True) if digest not in trained_on]
    if on_total:
        on_total(len(items))
    data = embed_labelled(items, embedder, on_progress=on_progress)
    if not data.labels:
        raise UsageError(f"no readable images in {root} to evaluate")
    # Paths whose content trained this model (its train or validation split), from the hashes
    # computed while embedding: the files are read once.
    seen = {path for path, digest in zip(data.paths, data.digests, strict=True) if digest in trained_on}

    classification, scope, open_set = None, "not run", None
    known = set(model.classes)
    if not known:
        notes.append(f"model {model.name} has no category head: classification not measured")
    else:
        keep = [i for i, label in enumerate(data.labels) if label in known or label == OTHER]
        unknown = sorted({label for label in data.labels if label not in known and label != OTHER})
        if unknown:
            notes.append(f"classes not in the model, left out of classification: {', '.join(unknown)}")
        scope = f"all {len(keep)} images of known classes"
        if seen or held_back:
            before = len(keep) + sum(label in known for _, label in held_back)
            keep = [i for i in keep if data.paths[i] not in seen]
            is_test_split = split is not None and len(keep) == len(split.test)
            scope = (f"the model's recorded test split: {len(keep)} images" if is_test_split
                     else f"{len(keep)} images the model did not train on")
            notes.append(f"{before - len(keep)} images here trained this model (its training or validation "
                         "split) and are left out of classification"
                         + ("; retrieval uses every image, so it is optimistic for a fine-tuned trunk"
                            if retrieval and model.trunk_file else ""))
        if keep and data.category_probs is not None and embedder.categorizer is not None:
            outputs = embedder.categorizer.outputs
            truth = [data.labels[i] for i in keep]
            probs = data.category_probs[keep]
            predicted = [outputs[int(j)] for j in np.argmax(probs, axis=1)]
            labels = outputs if OTHER in outputs or OTHER not in truth else [*outputs, OTHER]
            classification = classification_report(truth, predicted, labels)
            if OTHER in truth:
                open_set = open_set_report(truth, probs, outputs, threshold)
                if OTHER not in outputs:
                    notes.append(f"model {model.name} is closed-set: it files every photo under one of its "
                                 "categories, so each photo of none of them counts as a mistake")
        else:
            notes.append("no image of a class the model knows: classification not measured")
    # Retrieval is about groups of photos; "other" is no group, so its photos are left out of it.
    groups = [i for i, label in enumerate(data.labels) if label != OTHER]
    report = (leave_one_out(data.vectors[groups], [data.labels[i] for i in groups])
              if retrieval and groups else None)
    return EvaluationReport(str(root), model.name, embedder.model_id, len(data.labels), data.skipped,
                            classification, scope, report, notes, open_set)


def _recorded_split(model: ModelRef) -> Split | None:
    if model.directory is None or not (model.directory / SPLIT_FILE).is_file():
        return None
    split = Split.load(model.directory)
    return split if split.hashes else None


def _hash_files(paths: list[str]) -> list[str | None]:
    """Content hashes, the same ones training recorded; None for unreadable files (embedding reports them)."""
    return [loaded.digest for loaded in load_many(paths, 4, decode_pixels=False)]
