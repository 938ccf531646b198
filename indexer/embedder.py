"""Turn decoded images into L2-normalised 2048-d embeddings and ImageNet scores."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from cbir.errors import WeightsUnavailableError
from indexer.resnet import EMBEDDING_DIM, build_resnet50, preprocess
from indexer.weights import WeightsFile, ensure_weights


@dataclass
class Embedding:
    vectors: np.ndarray  # (N, 2048) float32, unit length
    imagenet_probs: np.ndarray  # (N, 1000) float32


class Embedder:
    """ResNet-50 with two outputs: pooled features for retrieval, softmax for labels."""

    dim = EMBEDDING_DIM

    def __init__(self, weights: WeightsFile) -> None:
        import keras

        model = build_resnet50()
        try:
            model.load_weights(weights.path)
        except Exception as exc:  # Keras raises ValueError/OSError/KeyError for a foreign file
            raise WeightsUnavailableError(f"cannot load weights {weights.path}: {exc}") from exc
        self.weights = weights
        self.model_id = "resnet50-imagenet-" + _weights_digest(model)[:16]
        self._net = keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])

    def embed(self, batch_rgb_uint8: np.ndarray) -> Embedding:
        if len(batch_rgb_uint8) == 0:
            return Embedding(np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32))
        features, probs = self._net.predict_on_batch(preprocess(batch_rgb_uint8))
        features = np.asarray(features, dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return Embedding(features / np.maximum(norms, 1e-12), np.asarray(probs, dtype=np.float32))


def _weights_digest(model) -> str:
    """A model id from the weight values, so the same weights give the same id from any source."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def load_embedder(weights_path: str | os.PathLike[str] | None = None) -> Embedder:
    return Embedder(ensure_weights(weights_path))
