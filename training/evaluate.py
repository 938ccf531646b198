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
from training.open_set_metrics import OpenSetReport, open_set_report, pr_curves
from training.retrieval_metrics import RetrievalReport, leave_one_out
from training.source_holdout import leave_one_source_out, per_source, read_sources
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
    pr_curves: dict[str, list[dict]] | None = None
    held_out: dict | None = None  # --group-by: the same figures with every source held out in turn

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
            "precision_recall": self.pr_curves,
            "held_out_sources": self.held_out,
            "notes": self.notes,
        }

    def text(self) -> str:
        lines = [f"data:   {self.data_dir} ({self.images} images)", f"model:  {self.model} ({self.model_id})", ""]
        if self.classification is not None:
            lines += [f"classification ({self.classification_scope})", self.classification.table(), "",
                      "confusion matrix", self.classification.confusion_table(), ""]
        if self.open_set is not None:
            lines += [self.open_set.table(), ""]
        if self.held_out is not None:
            h = self.held_out
            lines += [f"leave one {h['group_by']} out ({len(h['per_source'])} sources; every photo predicted by a "
                      f"head that never saw its {h['group_by']})", h["classification_table"], "",
                      h["at_threshold_table"], "", f"{h['group_by']:<44}{'photos':>7}{'recall':>8}{'wrong':>7}"
                      f"{'other moved':>13}"]
            for row in h["per_source"]:
                recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
                other = "-" if row["other_moved"] is None else f"{row['other_moved']:.3f}"
                lines.append(f"{row['source'][:43]:<44}{row['photos']:>7}{recall:>8}{row['moved_wrongly']:>7}"
                             f"{other:>13}")
            lines.append("")
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
    group_by: str | None = None,
) -> EvaluationReport:
    """Classification (over the categories and "other"), what a clean at ``threshold`` would move and the
    precision-recall curve of each category, open-set figures when photos of none of the categories are given
    (``other`` folders, or a class folder named "other"), and retrieval. With ``group_by`` (a manifest column,
    "source"), the classification figures again with every source held out in turn (training.source_holdout)."""
    root = Path(data_dir).expanduser().resolve()
    items = list_labelled_images(root)
    for folder in other or []:
        items += [(path, OTHER) for path in list_images(Path(folder).expanduser().resolve())]
    model: ModelRef = embedder.model
    sources = None
    if group_by is not None:  # checked before anything is embedded
        if not model.classes:
            raise UsageError("--group-by needs a model with categories")
        sources = read_sources([root, *(Path(f).expanduser().resolve() for f in other or [])], group_by)
    notes: list[str] = []
    split = _recorded_split(model)
    trained_on = split.hashes_of("train", "val") if split is not None else set()
    held_back: list[tuple[str, str]] = []  # training images never embedded (classification only)
    if trained_on and not retrieval and group_by is None:
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

    classification, scope, open_set, curves = None, "not run", None, None
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
            open_set = open_set_report(truth, probs, outputs, threshold)
            curves = pr_curves(truth, probs, outputs)
            if OTHER in truth:
                if OTHER not in outputs:
                    notes.append(f"model {model.name} is closed-set: it files every photo under one of its "
                                 "categories, so each photo of none of them counts as a mistake")
        else:
            notes.append("no image of a class the model knows: classification not measured")
    # Retrieval is about groups of photos; "other" is no group, so its photos are left out of it.
    groups = [i for i, label in enumerate(data.labels) if label != OTHER]
    report = (leave_one_out(data.vectors[groups], [data.labels[i] for i in groups])
              if retrieval and groups else None)
    held_out = None
    if group_by is not None and sources is not None:
        scene = embedder.categorizer.scene if embedder.categorizer is not None else None
        held_out = _held_out(data, sources, group_by, model.classes, threshold, notes, scene)
    return EvaluationReport(str(root), model.name, embedder.model_id, len(data.labels), data.skipped,
                            classification, scope, report, notes, open_set, curves, held_out)


def _held_out(data, sources: dict[str, str], group_by: str, classes: list[str], threshold: float,
              notes: list[str], scene: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """Leave-one-source-out figures over every photo of a known class or "other" that has a source."""
    keep = [i for i, (path, label) in enumerate(zip(data.paths, data.labels, strict=True))
            if (label in classes or label == OTHER) and str(Path(path).resolve()) in sources]
    missing = sum(1 for label in data.labels if label in classes or label == OTHER) - len(keep)
    if missing:
        notes.append(f"{missing} photos have no {group_by} in the manifests and are left out of the held-out figures")
    labels = [data.labels[i] for i in keep]
    held = leave_one_source_out(data.vectors[keep], labels,
                                [sources[str(Path(data.paths[i]).resolve())] for i in keep], list(classes),
                                [data.digests[i] for i in keep], scene=scene)
    predicted = [held.outputs[int(j)] for j in held.probs.argmax(axis=1)]
    labels_out = held.outputs if OTHER in held.outputs or OTHER not in labels else [*held.outputs, OTHER]
    classification = classification_report(labels, predicted, labels_out)
    at_threshold = open_set_report(labels, held.probs, held.outputs, threshold)
    notes.append(f"held-out figures: a head refitted per held-out {group_by} on the other sources' features "
                 "(no augmented copies), as `cbir train --fine-tune head` fits it")
    return {"group_by": group_by, "classification": classification.as_dict(),
            "classification_table": classification.table(), "at_threshold": at_threshold.as_dict(),
            "at_threshold_table": at_threshold.table(), "precision_recall": pr_curves(labels, held.probs,
                                                                                       held.outputs),
            "per_source": per_source(held, threshold)}


def _recorded_split(model: ModelRef) -> Split | None:
    if model.directory is None or not (model.directory / SPLIT_FILE).is_file():
        return None
    split = Split.load(model.directory)
    return split if split.hashes else None


def _hash_files(paths: list[str]) -> list[str | None]:
    """Content hashes, the same ones training recorded; None for unreadable files (embedding reports them)."""
    return [loaded.digest for loaded in load_many(paths, 4, decode_pixels=False)]
