"""The embedder interface: decoded images in, L2-normalised 2048-d embeddings and category scores out.

The network computes, in a single call, the pooled ResNet-50 features (the
retrieval embedding) and the ImageNet scores when the trunk is the ImageNet
one. Each engine in indexer.engines runs it one way (Keras, LiteRT, OpenVINO
in float32, bf16 or int8), and ``indexer.engines.load.load_embedder`` gives
a command the one to use. The model's categories are computed from the
embedding by its categorizer (indexer.categorizer), so a new head never
needs the network.

A model id is the trunk's id (what the vectors depend on), then ``+`` and the
head's name and content digest (what the categories depend on).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexer.categorizer import Categorizer
from indexer.model import ModelRef, head_id
from indexer.resnet import EMBEDDING_DIM, preprocess
from indexer.tags import Tagger, load_classifier

if TYPE_CHECKING:
    from indexer.tags import Tagger

log = logging.getLogger(__name__)

FEATURES, IMAGENET = "features", "imagenet"


@dataclass
class Embedding:
    vectors: np.ndarray  # (N, 2048) float32, unit length
    imagenet_probs: np.ndarray | None  # (N, 1000), only with the ImageNet trunk
    category_probs: np.ndarray | None  # (N, len(categorizer.outputs)), only with a category head
    norms: np.ndarray | None = None  # (N,) the pooled features' lengths, what tags need beside the vectors


class Embedder:
    """What every engine runs: uint8 RGB images in, unit-length embeddings and category scores out.

    Each engine runs the network one way by implementing ``raw_outputs`` and setting ``trunk_id``,
    ``output_names`` and ``runtime`` (the engine's name); the output layout, normalisation and categories
    are shared here. ``choice`` says why this engine runs.
    """

    dim = EMBEDDING_DIM
    runtime = ""
    choice = ""
    model: ModelRef
    trunk_id: str
    output_names: list[str]
    categorizer: Categorizer | None = None

    @property
    def model_id(self) -> str:
        head = head_id(self.model)
        return f"{self.trunk_id}+{head}" if head else self.trunk_id

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def embed(self, batch_rgb_uint8: np.ndarray) -> Embedding:
        if len(batch_rgb_uint8) == 0:
            empty = np.zeros((0, self.dim), np.float32)
            return Embedding(empty, None, self.categorizer.probabilities(empty) if self.categorizer else None,
                             np.zeros(0, np.float32))
        outputs = dict(zip(self.output_names, self.raw_outputs(preprocess(batch_rgb_uint8)), strict=True))
        features = np.asarray(outputs[FEATURES], dtype=np.float32)
        norms = np.linalg.norm(features, axis=1)
        vectors = features / np.maximum(norms[:, None], 1e-12)
        imagenet = np.asarray(outputs[IMAGENET], np.float32) if IMAGENET in outputs else None
        categories = self.categorizer.probabilities(vectors) if self.categorizer else None
        return Embedding(vectors, imagenet, categories, norms.astype(np.float32))

    @functools.cached_property
    def tagger(self) -> Tagger:
        """Tags from this model's outputs: ImageNet's classes and their ancestors on the ImageNet trunk (a
        fine-tuned trunk's features no longer feed ImageNet's classifier), and the category."""

        weights = getattr(self, "weights", None)
        classifier = load_classifier(weights.path) if weights is not None and self.model.trunk_file is None else None
        return Tagger(classifier, self.trunk_id)

    def categorize(self, vectors: np.ndarray) -> list[tuple[str, dict[str, float]]]:
        """Categories of stored (or fresh) embeddings with this model's head; [] without one."""
        return self.categorizer.categorize(vectors) if self.categorizer else []

    def categories(self, probs: np.ndarray | None) -> list[tuple[str | None, dict[str, float] | None]]:
        """(best category, {output: probability}) per row; [] without a head. The best may be ``other``."""
        if probs is None or self.categorizer is None:
            return []
        outputs = self.categorizer.outputs
        return [(outputs[int(np.argmax(row))], {c: round(float(p), 5) for c, p in zip(outputs, row, strict=True)})
                for row in probs]


def weights_digest(model) -> str:
    """A model id from the weight values, so the same weights give the same id from any source."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()
