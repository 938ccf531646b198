"""The OpenVINO engines: the trunk's LiteRT export converted to OpenVINO, run in float32, in the CPU's
reduced float precision (bf16 or f16), or as int8, with the layers that stay float in either precision.

The precision is set explicitly when a model is compiled: OpenVINO's default on a CPU with AMX or
AVX512-BF16 is bf16, which silently ran the "float32" engine and the float layers of the int8 model in
bf16. With those layers in float32, int8 arithmetic is exact whatever the instruction set, so the int8
model computes the same on every x86 CPU.

The int8 model is made by post-training quantization (NNCF) on 256 real photos that ship with cbir
(``cbir/data/int8/calibration``, see tools/build_int8_photos.py), fed 8 at a time (peak memory 1.4 GB
against 4.1 GB at 32, and on the 332 check photos min cosine 0.9925 against 0.9926), with the first
convolution and the two convolutions that read its pooled output kept in float: on a split of the
development photos they were the layers whose quantization moved embeddings most (NNCF's
accuracy-aware ranking named them first; with them in float32 the lowest embedding cosine went from
0.968 to 0.993).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from cbir.errors import ModelError
from indexer.embedder import Embedder
from indexer.engines.files import RuntimeFiles
from indexer.engines.table import Engine

log = logging.getLogger(__name__)

# Convolutions kept in float, by their order in the network: conv1, and the shortcut and first 1x1
# convolution of the first bottleneck block, which read conv1's pooled output.
FLOAT_CONVOLUTIONS = (0, 1, 2)
CALIBRATION_BATCH = 8


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def int8_available() -> bool:
    return openvino_available() and importlib.util.find_spec("nncf") is not None


def reduced_precisions() -> list[str]:
    """The reduced float precisions OpenVINO computes natively on this CPU: bf16 (AMX, AVX512-BF16), f16."""
    import openvino as ov

    capabilities = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return [p for p, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in capabilities]


class OpenVinoNet:
    """A compiled OpenVINO model; call it on a float batch to get its outputs in the meta's order."""

    def __init__(self, xml: Path, order: list[int], threads: int | None = None, precision: str = "f32") -> None:
        import openvino as ov

        core = ov.Core()
        # OpenVINO keeps the compiled form beside the model: a second process skips compiling (~0.4 s a start).
        core.set_property({"CACHE_DIR": str(xml.parent / "openvino-compiled")})
        try:
            model = core.read_model(str(xml))
            # Unpinned: while indexing, decoding threads share the cores, and a pinned inference thread
            # that loses its core stalls the others at every layer (index_throughput: 19.3 -> 21.1 images/s).
            self._compiled = core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1, "NUM_STREAMS": 1,
                "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": precision})
        except RuntimeError as exc:
            raise ModelError(f"cannot load the OpenVINO model {xml}: {str(exc).splitlines()[0][:200]}") from exc
        self._request = self._compiled.create_infer_request()
        self._outputs = [self._compiled.outputs[i] for i in order]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self._request.infer(np.ascontiguousarray(batch, dtype=np.float32))
        return [np.array(result[o]) for o in self._outputs]


class OpenVinoEmbedder(Embedder):
    def __init__(self, engine: Engine, model, files: RuntimeFiles, meta: dict, threads: int | None = None,
                 weights=None) -> None:
        self.model = model
        self.weights = weights
        self.trunk_id = meta["trunk_id"]
        self.output_names = list(meta["outputs"])
        self.categorizer = model.categorizer()
        self.runtime = engine.name
        self.net = OpenVinoNet(files.model, meta["order"], threads, engine.precision)

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return self.net(x)


def convert(tflite: Path):
    """The LiteRT export as an OpenVINO model taking batches of any size."""
    import openvino as ov

    model = ov.Core().read_model(str(tflite))
    model.reshape({model.inputs[0]: [-1, 224, 224, 3]})
    return model


def output_order(model, widths_wanted: list[int]) -> list[int]:
    """Which OpenVINO output is each of the Keras model's outputs, by their widths."""
    widths = [int(o.get_partial_shape()[-1].get_length()) for o in model.outputs]
    try:
        order = [widths.index(w) for w in widths_wanted]
    except ValueError:
        order = []
    if sorted(order) != list(range(len(widths))):
        raise ModelError(f"cannot match the OpenVINO model's outputs {widths} to the network's {widths_wanted}")
    return order


def quantize(model, calibration: np.ndarray):
    """int8 by NNCF post-training quantization on ``calibration`` (preprocessed photos)."""
    import nncf

    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    batches = [calibration[i:i + CALIBRATION_BATCH] for i in range(0, len(calibration), CALIBRATION_BATCH)]
    previous = nncf.common.logging.nncf_logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        # NNCF draws progress bars on stdout, which is for cbir's results: they go nowhere.
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):
            return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                                 ignored_scope=nncf.IgnoredScope(names=[convolutions[i] for i in FLOAT_CONVOLUTIONS]))
    finally:
        nncf.set_log_level(previous)


def save(model, files: RuntimeFiles) -> None:
    """Write the .xml and .bin beside each other by renames, the .xml last (it is what is looked for)."""
    import openvino as ov

    files.model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=files.model.parent, prefix=".openvino-") as tmp:
        xml = Path(tmp) / files.model.name
        ov.save_model(model, str(xml), compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), files.model.with_suffix(".bin"))
        os.replace(xml, files.model)
