"""The OpenVINO engine: the model's checked LiteRT export converted to OpenVINO, float32 or int8.

int8 is where a CPU has speed left (benchmarks/inference.py): about 1.9 times the LiteRT float32
engine on a 2-core AVX2 CPU without VNNI. It is made by post-training quantization (NNCF) on 256
real photos that ship with cbir (``cbir/data/int8/calibration``, see tools/build_int8_photos.py),
with the first convolution and the two convolutions that read its pooled output kept in float32:
on a split of the development photos they were the layers whose quantization moved embeddings most
(NNCF's accuracy-aware ranking named them first; with them in float32 the lowest embedding cosine
went from 0.968 to 0.993). An int8 model is used only when it is faithful to the float32 Keras
model on the 332 check photos (``cbir/data/int8/check``, none used for calibration): embedding
cosine at least ``MIN_COSINE`` on every one of them, and the same category on at least
``MIN_CATEGORY_AGREEMENT`` of them. One that fails is remembered as such, and float32 runs instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cbir.errors import ModelError
from indexer.embedder import Embedder
from indexer.lite_export import RuntimeFiles, compare

log = logging.getLogger(__name__)

OPENVINO_FORMAT = 1
MIN_COSINE = 0.99
MIN_CATEGORY_AGREEMENT = 0.99
# Convolutions kept in float32, by their order in the network: conv1, and the shortcut and first 1x1
# convolution of the first bottleneck block, which read conv1's pooled output.
FLOAT_CONVOLUTIONS = (0, 1, 2)
CALIBRATION_BATCH = 32


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def int8_available() -> bool:
    return openvino_available() and importlib.util.find_spec("nncf") is not None


def shipped_photos(part: str) -> np.ndarray:
    """The calibration or check photos that ship with cbir, as 224x224 uint8 RGB."""
    from importlib.resources import files

    from indexer.loader import decode

    folder = files("cbir") / "data" / "int8" / part
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jpg"))
    return np.stack([decode((folder / name).read_bytes()) for name in names])


class OpenVinoNet:
    """A compiled OpenVINO model; call it on a float batch to get its outputs in the meta's order."""

    def __init__(self, xml: Path, order: list[int], threads: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        # OpenVINO keeps the compiled form beside the model: a second process skips compiling (~0.4 s a start).
        core.set_property({"CACHE_DIR": str(xml.parent / "openvino-compiled")})
        try:
            model = core.read_model(str(xml))
            # Unpinned: while indexing, decoding threads share the cores, and a pinned inference thread
            # that loses its core stalls the others at every layer (index_throughput: 19.3 -> 21.1 images/s).
            self._compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1,
                                                               "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False})
        except RuntimeError as exc:
            raise ModelError(f"cannot load the OpenVINO model {xml}: {str(exc).splitlines()[0][:200]}") from exc
        self._request = self._compiled.create_infer_request()
        self._outputs = [self._compiled.outputs[i] for i in order]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self._request.infer(np.ascontiguousarray(batch, dtype=np.float32))
        return [np.array(result[o]) for o in self._outputs]


class OpenVinoEmbedder(Embedder):
    runtime = "openvino"

    def __init__(self, model, files: RuntimeFiles, meta: dict, threads: int | None = None, weights=None) -> None:
        self.model = model
        self.weights = weights
        self.trunk_id = meta["trunk_id"]
        self.output_names = list(meta["outputs"])
        self.categorizer = model.categorizer()
        self.quantization = meta["quantization"]
        self.runtime = f"openvino-{self.quantization}"
        self.net = OpenVinoNet(files.model, meta["order"], threads)
        self.net_files = files.model

    def raw_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return self.net(x)


def _convert(tflite: Path):
    import openvino as ov

    model = ov.Core().read_model(str(tflite))
    model.reshape({model.inputs[0]: [-1, 224, 224, 3]})
    return model


def _order(model, reference: list[np.ndarray]) -> list[int]:
    """Which OpenVINO output is each of the Keras model's outputs, by their widths."""
    widths = [int(o.get_partial_shape()[-1].get_length()) for o in model.outputs]
    order = [widths.index(r.shape[-1]) for r in reference]
    if sorted(order) != list(range(len(widths))):
        raise ModelError(f"cannot match the OpenVINO model's outputs {widths} to the network's")
    return order


def _quantize(model):
    import nncf

    calibration = _preprocessed(shipped_photos("calibration"))
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


def _preprocessed(images: np.ndarray) -> np.ndarray:
    from indexer.resnet import preprocess

    return preprocess(images)


def _run(net, x: np.ndarray, batch: int = 32) -> list[np.ndarray]:
    parts = [net(x[i:i + batch]) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def _save(model, files: RuntimeFiles) -> None:
    """Write the .xml and .bin beside each other by renames, the .xml last (it is what is looked for)."""
    import openvino as ov

    files.model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=files.model.parent, prefix=".openvino-") as tmp:
        xml = Path(tmp) / files.model.name
        ov.save_model(model, str(xml), compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), files.model.with_suffix(".bin"))
        os.replace(xml, files.model)


def build_openvino(keras_embedder, tflite: Path, files: RuntimeFiles, quantization: str) -> dict:
    """Convert (and for int8 quantize) the LiteRT export, check it against Keras, cache it; returns its meta."""
    from index_store.atomic import atomic_write_text
    from indexer.lite_export import check_images
    from indexer.runtime_choice import inference_threads

    started = time.monotonic()
    model = _convert(tflite)
    images = check_images() if quantization == "float32" else shipped_photos("check")
    x = _preprocessed(images)
    reference = _run(keras_embedder.raw_outputs, x)
    order = _order(model, reference)
    if quantization == "int8":
        model = _quantize(model)
    _save(model, files)
    candidate = _run(OpenVinoNet(files.model, order, inference_threads()), x)
    categorizer = keras_embedder.categorizer
    if categorizer is not None:
        reference = [*reference, categorizer.probabilities(reference[0])]
        candidate = [*candidate, categorizer.probabilities(candidate[0])]
    check = compare(reference, candidate)
    agreement = check["top1_agreement"][-1] if categorizer is not None else 1.0
    min_agreement = MIN_CATEGORY_AGREEMENT if quantization == "int8" else 1.0
    faithful = check["min_cosine"] >= MIN_COSINE and agreement >= min_agreement
    if not faithful:
        files.model.unlink(missing_ok=True)
        files.model.with_suffix(".bin").unlink(missing_ok=True)
    meta = {"format": OPENVINO_FORMAT, "key": files.key, "quantization": quantization, "faithful": faithful,
            "trunk_id": keras_embedder.trunk_id, "built_for": keras_embedder.model.ref,
            "outputs": keras_embedder.output_names, "order": order, "check": check,
            "float_convolutions": list(FLOAT_CONVOLUTIONS) if quantization == "int8" else [],
            "bar": {"min_cosine": MIN_COSINE, "category_agreement": min_agreement},
            "seconds": round(time.monotonic() - started, 1), "created_at": time.time()}
    atomic_write_text(files.meta, json.dumps(meta, indent=2) + "\n")
    return meta


def load_openvino(ref, weights, digest: str | None, tflite: Path, threads: int | None, keras_embedder,
                  float_fallback: bool) -> Embedder | None:
    """The int8 engine when its export is faithful; else, when OpenVINO was asked for by name, its float32
    engine; else None (the caller runs LiteRT). Exports are made and checked once per model."""
    from indexer.keras_embedder import KerasEmbedder
    from indexer.lite_export import runtime_files, runtime_key
    from indexer.runtime_choice import inference_threads

    precisions = (["int8"] if int8_available() else []) + (["float32"] if float_fallback else [])
    for quantization in precisions:
        engine = f"openvino-{quantization}"
        files = runtime_files(ref, runtime_key(ref, digest, engine), engine, ".xml")
        meta = files.read_meta(OPENVINO_FORMAT, (".bin",))
        if meta is None:
            log.info("preparing the %s model for %s (once per model, %s)", engine, ref.name,
                     "about two minutes" if quantization == "int8" else "a few seconds")
            keras_embedder = keras_embedder or KerasEmbedder(weights, ref)
            meta = build_openvino(keras_embedder, tflite, files, quantization)
            check = meta["check"]
            say = log.info if meta["faithful"] else log.warning
            say("%s model checked on %d photos against float32: embedding cosine >= %.4f (1st percentile %.4f), "
                "same category on %.1f%%%s", engine, check["images"], check["min_cosine"], check["p1_cosine"],
                100 * check["top1_agreement"][-1], "" if meta["faithful"] else
                f"; below the bar ({MIN_COSINE} on every photo), so it is not used")
        if meta["faithful"]:
            return OpenVinoEmbedder(ref, files, meta, inference_threads(threads), weights)
    return None
