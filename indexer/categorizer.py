"""Categories from embeddings, in an open world: one of the model's classes, or ``other``.

A model folder's category head runs here, in NumPy, on the L2-normalised
pooled features that are also the retrieval embedding. So categories can be
computed at index time from what the engine already returns, and computed
again from the vectors stored in an index when only the head changes (a new
default model, a model trained on more data), without embedding anything.

The head is a cosine classifier: ``softmax((scale * f(x) @ W + b) / T)``,
where ``f(x)`` is the unit embedding, or, for a head that reads the scene
(``scene`` set: the ImageNet classifier), the unit embedding beside the unit,
centred log-probabilities of ImageNet's 1000 classes (seashore, valley,
plate, menu...) computed from it, each block weighing the same. The scores
are computed from the unit embedding at a fixed length (``SCENE_NORM``, the
typical pooled-feature length), so stored vectors are all a head needs; the
softmax is what adds information a linear head on the embedding lacks
(benchmarks/category_sources.py measured both, and the scores at each
photo's own length: no better).
Its classes may include ``other``, learned from photos of none of the
categories. On top of it sits an energy gate: a photo whose energy over the
categories' logits (``T * logsumexp(logits / T)``, high for what looks like
some category, low for what looks like none) falls below a threshold set on
held-out photos of the categories is ``other`` whatever the head says, since
a classifier's confidence means little for kinds of photos it never saw. The
temperature ``T`` is fitted on held-out data (the validation split), so a
probability of 0.9 means about 9 in 10. ``categorizer.npz`` in the model
folder holds all of it; a model folder from before it existed (only
``head.keras``) is read as a closed-set head, its weights taken straight from
the Keras file. benchmarks/open_set.py measured the methods this was chosen
from.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbir.errors import ModelError

OTHER = "other"
CATEGORIZER_FILE = "categorizer.npz"
CATEGORIZER_FORMAT = 2  # 2: may hold a scene block; format 1 files (no scene) are read too
SCENE_NORM = 38.0  # the median pooled-feature length of the ImageNet trunk (indexer.tags.TYPICAL_NORM)
SCENE_FLOOR = float(np.log(1e-6))  # log-probabilities below this carry no more information, only noise


def head_features(vectors: np.ndarray, scene: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """What a head reads: the unit embedding, or with ``scene`` (the ImageNet classifier's kernel and bias)
    that and the centred, unit ImageNet log-probabilities beside it, the whole of unit length."""
    x = np.asarray(vectors, np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if scene is None:
        return x
    kernel, bias = scene
    logits = SCENE_NORM * (x @ kernel) + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = np.maximum(logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), SCENE_FLOOR)
    log_probs -= log_probs.mean(axis=1, keepdims=True)
    log_probs /= np.maximum(np.linalg.norm(log_probs, axis=1, keepdims=True), 1e-12)
    return (np.concatenate([x, log_probs], axis=1) / np.sqrt(2.0)).astype(np.float32)


@dataclass
class Categorizer:
    classes: list[str]  # the model's categories, without "other"
    weights: np.ndarray  # (dim, len(head_classes)) cosine-classifier weights
    bias: np.ndarray  # (len(head_classes),)
    head_classes: list[str]  # the head's outputs: the classes, plus "other" when it was learned
    scale: float = 16.0
    temperature: float = 1.0
    min_energy: float | None = None  # below this energy over the categories' logits: other
    method: dict = field(default_factory=dict)  # how it was made and measured (for the model card)
    scene: tuple[np.ndarray, np.ndarray] | None = None  # the ImageNet classifier, for a head that reads the scene

    @property
    def open_set(self) -> bool:
        return OTHER in self.head_classes or self.min_energy is not None

    @property
    def outputs(self) -> list[str]:
        """The probability columns: the classes, then ``other`` for an open-set model."""
        return [*self.classes, OTHER] if self.open_set else list(self.classes)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return self.scale * (head_features(vectors, self.scene) @ self.weights) + self.bias

    def energy(self, logits: np.ndarray) -> np.ndarray:
        """``T * logsumexp(logits / T)`` over the categories' columns: how much a photo looks like any of them."""
        z = logits[:, [self.head_classes.index(c) for c in self.classes]] / self.temperature
        top = z.max(axis=1)
        return self.temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(N, len(outputs)) calibrated probabilities; each row sums to 1."""
        if len(vectors) == 0:
            return np.zeros((0, len(self.outputs)), np.float32)
        logits = self.logits(vectors)
        z = logits / self.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        columns = [self.head_classes.index(c) for c in self.classes]
        known = p[:, columns]
        if not self.open_set:
            return known.astype(np.float32)
        if self.min_energy is not None:
            unlike = self.energy(logits) < self.min_energy
            known = np.where(unlike[:, None], 0.0, known)
        other = 1.0 - known.sum(axis=1, keepdims=True)
        return np.concatenate([known, np.clip(other, 0.0, 1.0)], axis=1).astype(np.float32)

    def categorize(self, vectors: np.ndarray) -> list[tuple[str, dict[str, float]]]:
        """(category, {output: probability}) per vector; the category is ``other`` for none of them."""
        outputs = self.outputs
        return [(outputs[int(np.argmax(row))], {c: round(float(p), 5) for c, p in zip(outputs, row, strict=True)})
                for row in self.probabilities(vectors)]

    def save(self, path: Path) -> None:
        meta = {"format": CATEGORIZER_FORMAT if self.scene is not None else 1, "classes": self.classes,
                "head_classes": self.head_classes, "scale": self.scale, "temperature": self.temperature,
                "min_energy": self.min_energy, "method": self.method}
        # The ImageNet classifier travels in the file (half precision: 4 MB), so a head never needs the
        # network's weights to recategorize stored vectors.
        arrays: dict[str, Any] = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
                                  "weights": self.weights.astype(np.float32), "bias": self.bias.astype(np.float32)}
        if self.scene is not None:
            arrays.update(scene_kernel=self.scene[0].astype(np.float16), scene_bias=self.scene[1].astype(np.float32))
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_categorizer(directory: Path, classes: list[str]) -> Categorizer:
    """The model folder's categorizer: ``categorizer.npz``, or the closed-set ``head.keras`` of older models."""
    path = directory / CATEGORIZER_FILE
    if path.is_file():
        return _load_npz(path, classes)
    return _from_keras_head(directory / "head.keras", classes)


def _load_npz(path: Path, classes: list[str]) -> Categorizer:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            weights, bias = data["weights"], data["bias"]
            scene = ((data["scene_kernel"].astype(np.float32), data["scene_bias"].astype(np.float32))
                     if "scene_kernel" in data.files else None)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if meta.get("format") not in (1, CATEGORIZER_FORMAT) or meta.get("classes") != classes:
        raise ModelError(f"{path} does not match its model card (format or classes differ)")
    head_classes = list(meta["head_classes"])
    rows = weights.shape[0] if scene is None else scene[0].shape[0] + scene[0].shape[1]
    if (weights.shape[1:] != (len(head_classes),) or bias.shape != (len(head_classes),)
            or weights.shape[0] != rows or (scene is not None and scene[1].shape != scene[0].shape[1:])):
        raise ModelError(f"{path} has weights of the wrong shape for {len(head_classes)} outputs")
    if not set(classes) <= set(head_classes) or not set(head_classes) <= {*classes, OTHER}:
        raise ModelError(f"{path}: its head's classes {head_classes} do not fit the card's {classes}")
    return Categorizer(list(classes), weights, bias, head_classes, float(meta["scale"]),
                       float(meta["temperature"]),
                       None if meta.get("min_energy") is None else float(meta["min_energy"]),
                       dict(meta.get("method") or {}), scene)


def _from_keras_head(path: Path, classes: list[str]) -> Categorizer:
    """A cosine head saved by Keras: its Dense weights read from the .keras zip, no TensorFlow needed."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
                dense = [name for name in h5["layers"] if name.startswith("dense")]
                weights = np.asarray(h5[f"layers/{dense[-1]}/vars/0"], np.float32)
                bias = np.asarray(h5[f"layers/{dense[-1]}/vars/1"], np.float32)
    except (OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read the category head {path}: {exc}") from None
    scale = next((layer["config"]["scale"] for layer in config["config"]["layers"]
                  if layer["class_name"] == "Rescaling"), 1.0)
    if weights.shape[1] != len(classes):
        raise ModelError(f"{path} has {weights.shape[1]} outputs for {len(classes)} classes in its model card")
    return Categorizer(list(classes), weights, bias, list(classes), float(scale),
                       method={"name": "closed-set cosine head (a model from before open-set categories)"})
