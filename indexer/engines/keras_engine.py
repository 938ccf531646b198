"""The network in Keras, float32: the reference every other engine is checked against, the training
format, and the engine that uses a GPU."""

from __future__ import annotations

import logging

import numpy as np

from cbir.errors import ModelError, WeightsUnavailableError
from indexer.embedder import FEATURES, IMAGENET, Embedder, weights_digest
from indexer.model import ModelRef
from indexer.resnet import build_resnet50, imagenet_trunk
from indexer.weights import WeightsFile

log = logging.getLogger(__name__)


class KerasEmbedder(Embedder):
    """The ResNet-50 trunk in Keras; embeds batches of uint8 RGB images (categories come from the categorizer)."""

    runtime = "keras-float32"

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
        self.categorizer = self.model.categorizer()
        self.net = keras.Model(trunk.inputs, outputs)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.net.predict_on_batch(x)
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _load_keras(path):
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # a truncated or foreign file fails in many ways inside Keras
        raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from exc


