"""Turn decoded images into L2-normalised 2048-d embeddings and category scores.

One network computes everything in a single call: the pooled ResNet-50
features (the retrieval embedding), the ImageNet scores when the trunk is the
ImageNet one, and the model's category probabilities when it has a head.
``Embedder`` runs it in Keras (the training format, and the GPU path);
``LiteEmbedder`` runs its cached LiteRT export (the fast CPU path).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from cbir.errors import ModelError, WeightsUnavailableError
from indexer.model import ModelRef, resolve_model, slug
from indexer.resnet import EMBEDDING_DIM, build_resnet50, imagenet_trunk, preprocess
from indexer.weights import WeightsFile, ensure_weights

log = logging.getLogger(__name__)

FEATURES, IMAGENET, CATEGORIES = "features", "imagenet", "categories"


@dataclass
class Embedding:
    vectors: np.ndarray  # (N, 2048) float32, unit length
    imagenet_probs: np.ndarray | None  # (N, 1000), only with the ImageNet trunk
    category_probs: np.ndarray | None  # (N, classes), only with a category head


class _EmbedderBase:
    """What every engine shares: output layout, normalisation, category naming."""

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
        outputs = dict(zip(self.output_names, self.raw_outputs(preprocess(batch_rgb_uint8))))
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
            (self.classes[int(np.argmax(row))], {c: round(float(p), 5) for c, p in zip(self.classes, row)})
            for row in probs
        ]


class Embedder(_EmbedderBase):
    """ResNet-50 trunk (+ optional category head) in Keras; embeds batches of uint8 RGB images."""

    runtime = "keras"

    def __init__(self, weights: WeightsFile | None, model: ModelRef | None = None) -> None:
        import keras

        self.model = model or ModelRef("imagenet", None, None)
        self.weights = weights
        trunk_file = self.model.trunk_file
        if trunk_file is not None:
            trunk = _load_keras(trunk_file)
            self.trunk_id = "resnet50-ft-" + weights_digest(trunk)[:16]
            outputs = [trunk.output]
            self.output_names = [FEATURES]
        else:
            if weights is None:
                raise WeightsUnavailableError("the ImageNet trunk needs ResNet-50 weights")
            full = build_resnet50()
            try:
                full.load_weights(weights.path)
            except Exception as exc:  # Keras raises ValueError/OSError/KeyError for a foreign file
                raise WeightsUnavailableError(f"cannot load weights {weights.path}: {exc}") from exc
            trunk = imagenet_trunk(full)
            self.trunk_id = "resnet50-imagenet-" + weights_digest(full)[:16]
            outputs = [trunk.output, full.output]
            self.output_names = [FEATURES, IMAGENET]
            expected = (self.model.card or {}).get("trunk", {}).get("id")
            if expected and expected != self.trunk_id:
                # Another copy of ImageNet weights may differ in the last bits; the index's model id
                # still keeps vectors apart, so warn rather than refuse.
                log.warning("model %s was trained on ResNet-50 weights %s, but %s are loaded; its categories "
                            "may be less accurate", self.model.name, expected, self.trunk_id)
        self.trunk = trunk  # image -> pooled features; training fine-tunes this in place
        self.model_id = self.trunk_id
        if self.model.has_head:
            head = _load_keras(self.model.head_file)
            if head.output.shape[-1] != len(self.classes):
                raise ModelError(f"{self.model.head_file} has {head.output.shape[-1]} outputs for "
                                 f"{len(self.classes)} classes in its model card")
            outputs.append(head(outputs[0]))
            self.output_names.append(CATEGORIES)
            self.model_id += f"+{slug(self.model.name)}-{weights_digest(head)[:12]}"
        self.net = keras.Model(trunk.inputs, outputs)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.net.predict_on_batch(x)
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


class LiteEmbedder(_EmbedderBase):
    """The model's cached LiteRT export; needs no TensorFlow."""

    runtime = "lite"

    def __init__(self, model: ModelRef, tflite_path: os.PathLike[str] | str, meta: dict, threads: int | None = None,
                 weights: WeightsFile | None = None) -> None:
        from indexer.lite import LiteNet

        self.model = model
        self.weights = weights
        self.model_id = meta["model_id"]
        self.output_names = list(meta["outputs"])
        self.quantization = meta.get("quantization", "")
        self.net = LiteNet(tflite_path, threads)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return self.net(x)


def weights_digest(model) -> str:
    """A model id from the weight values, so the same weights give the same id from any source."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _load_keras(path):
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # a truncated or foreign file fails in many ways inside Keras
        raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from exc


def load_embedder(weights_path: str | os.PathLike[str] | None = None,
                  model: ModelRef | str | None = None, runtime: str | None = None,
                  threads: int | None = None) -> _EmbedderBase:
    """The embedder for a model choice on the chosen engine; ImageNet weights are provisioned only when needed.

    On the LiteRT engine the export is made (and checked) on first use of a model, then reused; an export
    that fails the fidelity check is remembered, and Keras runs that model instead.
    """
    from indexer.engine import choose_runtime, inference_threads
    from indexer.runtime import build_export, runtime_files, runtime_key

    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    weights = None if ref.trunk_file is not None else ensure_weights(weights_path)
    if choose_runtime(runtime) == "keras":
        return Embedder(weights, ref)
    files = runtime_files(ref, runtime_key(ref, weights.digest() if weights else None))
    meta = files.read_meta()
    if meta is None:
        log.info("preparing the fast inference model for %s (once per model, about a minute)", ref.name)
        keras_embedder = Embedder(weights, ref)
        meta = build_export(keras_embedder, files)
        log.info("runtime model checked on %d photos: embedding cosine >= %.4f, same top-1 %s",
                 meta["check"]["images"], meta["check"]["min_cosine"], meta["check"]["top1_agreement"])
        if not meta["faithful"]:
            log.warning("the LiteRT export of %s is not faithful enough (%s); using Keras", ref.name, meta["check"])
            return keras_embedder
    elif not meta["faithful"]:
        return Embedder(weights, ref)
    return LiteEmbedder(ref, files.model, meta, inference_threads(threads), weights)
