"""The embedder interface: decoded images in, L2-normalised 2048-d embeddings and category scores out.

The network computes, in a single call, the pooled ResNet-50 features (the
retrieval embedding) and the ImageNet scores when the trunk is the ImageNet
one. ``KerasEmbedder`` (indexer.keras_embedder) runs it in Keras, the
training format and the GPU path; ``LiteEmbedder`` (indexer.lite_embedder)
runs its cached LiteRT export, the fast CPU path. ``load_embedder`` picks one.
The model's categories are computed from the embedding by its categorizer
(indexer.categorizer), so a new head never needs the network.

A model id is the trunk's id (what the vectors depend on), then ``+`` and the
head's name and content digest (what the categories depend on).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexer.categorizer import Categorizer
from indexer.model import ModelRef, head_id, resolve_model
from indexer.resnet import EMBEDDING_DIM, preprocess
from indexer.weights import ensure_weights

if TYPE_CHECKING:
    from indexer.tags import Tagger

log = logging.getLogger(__name__)

FEATURES, IMAGENET = "features", "imagenet"


@dataclass
class Embedding:
    vectors: np.ndarray  # (N, 2048) float32, unit length
    imagenet_probs: np.ndarray | None  # (N, 1000), only with the ImageNet trunk on Keras
    category_probs: np.ndarray | None  # (N, len(categorizer.outputs)), only with a category head
    norms: np.ndarray | None = None  # (N,) the pooled features' lengths, what tags need beside the vectors


class Embedder:
    """What every engine runs: uint8 RGB images in, unit-length embeddings and category scores out.

    Subclasses run the network one way (``KerasEmbedder``, ``LiteEmbedder``) by implementing
    ``raw_outputs`` and setting ``trunk_id`` and ``output_names``; the output layout, normalisation
    and categories are shared here.
    """

    dim = EMBEDDING_DIM
    runtime = ""
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
        from indexer.tags import Tagger, load_classifier

        weights = getattr(self, "weights", None)
        classifier = load_classifier(weights.path) if weights is not None and self.model.trunk_file is None else None
        return Tagger(classifier)

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


def load_embedder(weights_path: str | os.PathLike[str] | None = None,
                  model: ModelRef | str | None = None, runtime: str | None = None,
                  threads: int | None = None, bulk: bool = True) -> Embedder:
    """The embedder for a model choice on the chosen engine; ImageNet weights are provisioned only when needed.

    On the LiteRT engine the export is made (and checked) on first use of a model, then reused; an export
    that fails the fidelity check is remembered, and Keras runs that model instead.
    """
    from indexer.keras_embedder import KerasEmbedder
    from indexer.lite_embedder import LiteEmbedder
    from indexer.lite_export import build_export, runtime_files, runtime_key
    from indexer.runtime_choice import choose_runtime, inference_threads, runtime_explicit

    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    weights = None if ref.trunk_file is not None else ensure_weights(weights_path)
    choice = choose_runtime(runtime, bulk)
    if choice == "keras":
        return KerasEmbedder(weights, ref)
    digest = weights.digest() if weights else None
    files = runtime_files(ref, runtime_key(ref, digest))
    meta = files.read_meta()
    keras_embedder = None
    if meta is None:
        log.info("preparing the fast inference model for %s (once per model, about a minute)", ref.name)
        keras_embedder = KerasEmbedder(weights, ref)
        meta = build_export(keras_embedder, files)
        log.info("runtime model checked on %d photos: embedding cosine >= %.4f, same top-1 %s",
                 meta["check"]["images"], meta["check"]["min_cosine"], meta["check"]["top1_agreement"])
        if not meta["faithful"]:
            log.warning("the LiteRT export of %s is not faithful enough (%s); using Keras", ref.name, meta["check"])
            return keras_embedder
    elif not meta["faithful"]:
        return KerasEmbedder(weights, ref)
    if choice == "openvino":
        from indexer.openvino_engine import load_openvino

        engine = load_openvino(ref, weights, digest, files.model, threads, keras_embedder,
                               float_fallback=runtime_explicit(runtime))
        if engine is not None:
            return engine
    return LiteEmbedder(ref, files.model, meta, inference_threads(threads), weights)
