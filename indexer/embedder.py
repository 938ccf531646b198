"""The embedder interface: decoded images in, L2-normalised 2048-d embeddings and category scores out.

One network computes everything in a single call: the pooled ResNet-50
features (the retrieval embedding), the ImageNet scores when the trunk is the
ImageNet one, and the model's category probabilities when it has a head.
``KerasEmbedder`` (indexer.keras_embedder) runs it in Keras, the training
format and the GPU path; ``LiteEmbedder`` (indexer.lite_embedder) runs its
cached LiteRT export, the fast CPU path. ``load_embedder`` picks one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from indexer.model import ModelRef, resolve_model
from indexer.resnet import EMBEDDING_DIM, preprocess
from indexer.weights import ensure_weights

log = logging.getLogger(__name__)

FEATURES, IMAGENET, CATEGORIES = "features", "imagenet", "categories"


@dataclass
class Embedding:
    vectors: np.ndarray  # (N, 2048) float32, unit length
    imagenet_probs: np.ndarray | None  # (N, 1000), only with the ImageNet trunk
    category_probs: np.ndarray | None  # (N, classes), only with a category head


class Embedder:
    """What every engine runs: uint8 RGB images in, unit-length embeddings and category scores out.

    Subclasses run the network one way (``KerasEmbedder``, ``LiteEmbedder``) by implementing
    ``raw_outputs``; the output layout, normalisation and category naming are shared here.
    """

    dim = EMBEDDING_DIM
    runtime = ""
    model: ModelRef
    model_id: str
    output_names: list[str]

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def embed(self, batch_rgb_uint8: np.ndarray) -> Embedding:
        if len(batch_rgb_uint8) == 0:
            empty = np.zeros((0, self.dim), np.float32)
            return Embedding(empty, None, np.zeros((0, len(self.classes)), np.float32) if self.classes else None)
        outputs = dict(zip(self.output_names, self.raw_outputs(preprocess(batch_rgb_uint8)), strict=True))
        features = np.asarray(outputs[FEATURES], dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        imagenet = np.asarray(outputs[IMAGENET], np.float32) if IMAGENET in outputs else None
        categories = np.asarray(outputs[CATEGORIES], np.float32) if CATEGORIES in outputs else None
        return Embedding(features / np.maximum(norms, 1e-12), imagenet, categories)

    def categories(self, probs: np.ndarray | None) -> list[tuple[str | None, dict[str, float] | None]]:
        """(best category, {category: probability}) per row; (None, None) without a head."""
        if probs is None:
            return []
        return [
            (self.classes[int(np.argmax(row))], {c: round(float(p), 5) for c, p in zip(self.classes, row, strict=True)})
            for row in probs
        ]


def weights_digest(model) -> str:
    """A model id from the weight values, so the same weights give the same id from any source."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def load_embedder(weights_path: str | os.PathLike[str] | None = None,
                  model: ModelRef | str | None = None, runtime: str | None = None,
                  threads: int | None = None) -> Embedder:
    """The embedder for a model choice on the chosen engine; ImageNet weights are provisioned only when needed.

    On the LiteRT engine the export is made (and checked) on first use of a model, then reused; an export
    that fails the fidelity check is remembered, and Keras runs that model instead.
    """
    from indexer.keras_embedder import KerasEmbedder
    from indexer.lite_embedder import LiteEmbedder
    from indexer.lite_export import build_export, runtime_files, runtime_key
    from indexer.runtime_choice import choose_runtime, inference_threads

    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    weights = None if ref.trunk_file is not None else ensure_weights(weights_path)
    if choose_runtime(runtime) == "keras":
        return KerasEmbedder(weights, ref)
    files = runtime_files(ref, runtime_key(ref, weights.digest() if weights else None))
    meta = files.read_meta()
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
    return LiteEmbedder(ref, files.model, meta, inference_threads(threads), weights)
