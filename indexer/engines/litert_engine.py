"""The LiteRT (TFLite) engine: export a Keras model, and run it without TensorFlow.

float32 with XNNPACK: in ``benchmarks/inference.py`` on a 2-core AVX2 CPU it ran as fast as
dynamic-range int8 and float16 weights (all within the run-to-run noise, 15-17 images/s, against 11-12
for Keras) while giving Keras' embeddings exactly (cosine 1.0000); full-integer int8 was about 15%
faster but fell below the 0.99 embedding-cosine bar (0.977). Exporting needs TensorFlow; running needs
only the small ``ai_edge_litert`` interpreter (or TensorFlow's bundled one), so a query in a fresh
process never imports TensorFlow, and starts sooner than with any other engine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING

import numpy as np

from cbir.errors import ModelError
from indexer.embedder import Embedder
from indexer.model import ModelRef
from indexer.weights import WeightsFile

if TYPE_CHECKING:
    import keras

QUANTIZATIONS = ("float32", "float16", "dynamic-int8")


def litert_available() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in ("ai_edge_litert", "tensorflow"))


def export_tflite(net: keras.Model, quantization: str = "float32",
                  calibration: np.ndarray | None = None) -> bytes:
    """Convert ``net`` (float input, any number of outputs) to a TFLite flatbuffer.

    ``calibration`` (preprocessed images) turns on full-integer int8: activations too are
    quantized, with ranges measured on those images.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose from {', '.join(QUANTIZATIONS)}")
    with tempfile.TemporaryDirectory(prefix="cbir-export-") as saved:
        net.export(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if calibration is not None:
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        return converter.convert()


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow bundles the same interpreter (deprecated there)
        import tensorflow as tf

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        Interpreter = tf.lite.Interpreter
    return Interpreter


class LiteNet:
    """A TFLite model with one image input; call it on a float batch to get its outputs in order."""

    def __init__(self, model: str | os.PathLike[str] | bytes, threads: int | None = None) -> None:
        Interpreter = _interpreter_class()
        self.threads = threads or os.cpu_count() or 1
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": os.fspath(model)}
        try:
            with _quiet_native_stderr():
                self._interpreter = Interpreter(**source, num_threads=self.threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the runtime model: {str(exc).splitlines()[0][:200]}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        # Keras' export names the signature's outputs output_0, output_1, ... in the model's output order.
        outputs = self._interpreter.get_signature_runner().get_output_details()
        self._outputs = [outputs[name]["index"] for name in sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[1]))]
        self._batch = 0

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            with _quiet_native_stderr():
                self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i).copy() for i in self._outputs]


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the runtime's native "INFO: Created ... delegate" line; cbir's stderr is for its own messages."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured, or closed)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class LiteEmbedder(Embedder):
    """The model's cached LiteRT export; needs no TensorFlow."""

    runtime = "litert-float32"

    def __init__(self, model: ModelRef, tflite_path: os.PathLike[str] | str, meta: dict, threads: int | None = None,
                 weights: WeightsFile | None = None) -> None:
        self.model = model
        self.weights = weights
        self.trunk_id = meta["trunk_id"]
        self.output_names = list(meta["outputs"])
        self.categorizer = model.categorizer()
        self.net = LiteNet(tflite_path, threads)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return self.net(x)
