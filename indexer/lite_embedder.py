"""The embedder on the model's cached LiteRT export: the fast CPU path, with no TensorFlow."""

from __future__ import annotations

import os

import numpy as np

from indexer.embedder import Embedder
from indexer.model import ModelRef
from indexer.weights import WeightsFile


class LiteEmbedder(Embedder):
    """The model's cached LiteRT export; needs no TensorFlow."""

    runtime = "lite"

    def __init__(self, model: ModelRef, tflite_path: os.PathLike[str] | str, meta: dict, threads: int | None = None,
                 weights: WeightsFile | None = None) -> None:
        from indexer.litert import LiteNet

        self.model = model
        self.weights = weights
        self.trunk_id = meta["trunk_id"]
        self.output_names = list(meta["outputs"])
        self.categorizer = model.categorizer()
        self.quantization = meta.get("quantization", "")
        self.net = LiteNet(tflite_path, threads)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return self.net(x)
