"""The steps of measuring a trunk's engines. Each runs in a child process of its own
(indexer.engines.steps), so TensorFlow's and NNCF's memory is given back when it ends.

``export``: Keras' reference outputs on the check photos, the LiteRT export and OpenVINO's float model
(from the LiteRT export), and Keras' own speed while it is loaded. ``quantize``: the int8 model.
``check``: each engine's fidelity to the reference on its check photos, and its speed on a fixed batch.
``cold``: one engine started as a one-off query starts it, for the parent to time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from index_store.atomic import atomic_write, atomic_write_text
from indexer.embedder import Embedder
from indexer.engines.build import build_engine, export_files, read_export
from indexer.engines.fidelity import FLOAT_SET, REDUCED_SET, bar, compare, faithful, photo_set, shipped_photos
from indexer.engines.files import EXPORT_FORMAT, RuntimeFiles, TrunkFiles
from indexer.engines.keras_engine import KerasEmbedder
from indexer.engines.litert_engine import export_tflite, litert_available
from indexer.engines.openvino_engine import convert, openvino_available, output_order, save
from indexer.engines.openvino_engine import quantize as nncf_quantize
from indexer.engines.table import ENGINES
from indexer.model import ModelRef
from indexer.resnet import preprocess
from indexer.weights import WeightsFile

TIMING_BATCH = 32  # images per call when timing, as `cbir index` batches them
TIMING_SECONDS = 1.5  # at least this long, and at least three calls, after one call to warm up


def images_per_second(embedder: Embedder, x: np.ndarray) -> float:
    """Throughput on one fixed batch of preprocessed photos."""
    embedder.raw_outputs(x)
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < TIMING_SECONDS:
        embedder.raw_outputs(x)
        calls += 1
    return round(calls * len(x) / (time.perf_counter() - started), 2)


def _outputs(embedder: Embedder, x: np.ndarray, batch: int = TIMING_BATCH) -> list[np.ndarray]:
    parts = [embedder.raw_outputs(x[i:i + batch]) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def _meta(files: RuntimeFiles, keras: Embedder, **more) -> dict:
    return {"format": EXPORT_FORMAT, "key": files.key, "trunk_id": keras.trunk_id, "built_for": keras.model.ref,
            "outputs": keras.output_names, "created_at": time.time(), **more}


def export(ref: ModelRef, trunk: TrunkFiles, weights: WeightsFile | None, threads: int, time_keras: bool) -> dict:
    """The reference outputs and the float exports that are missing; Keras' speed when asked."""

    keras = KerasEmbedder(weights, ref)
    trunk.folder.mkdir(parents=True, exist_ok=True)
    made = []
    reference = export_files(trunk, "reference")
    if read_export(trunk, "reference") is None:
        arrays = {}
        for part in (FLOAT_SET, REDUCED_SET):
            for name, values in zip(keras.output_names, _outputs(keras, preprocess(shipped_photos(part))),
                                    strict=True):
                arrays[f"{part}:{name}"] = values
        atomic_write(reference.model, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")  # type: ignore[arg-type]
        atomic_write_text(reference.meta, json.dumps(_meta(reference, keras), indent=2) + "\n")
        made.append("reference")
    tflite = export_files(trunk, "tflite")
    if litert_available() and read_export(trunk, "tflite") is None:
        data = export_tflite(keras.net)
        atomic_write(tflite.model, lambda tmp: Path(tmp).write_bytes(data))
        atomic_write_text(tflite.meta, json.dumps(_meta(tflite, keras), indent=2) + "\n")
        made.append("tflite")
    if openvino_available() and read_export(trunk, "tflite") is not None and read_export(trunk, "float") is None:
        files = export_files(trunk, "float")
        model = convert(tflite.model)
        widths = [_width(reference.model, f"{FLOAT_SET}:{name}") for name in keras.output_names]
        save(model, files)
        atomic_write_text(files.meta, json.dumps(_meta(files, keras, order=output_order(model, widths)),
                                                 indent=2) + "\n")
        made.append("float")
    speed = images_per_second(keras, preprocess(shipped_photos(REDUCED_SET)[:TIMING_BATCH])) if time_keras else None
    return {"trunk_id": keras.trunk_id, "made": made, "keras_images_per_s": speed}


def _width(npz: Path, name: str) -> int:
    with np.load(npz) as arrays:
        return int(arrays[name].shape[-1])


def quantize(ref: ModelRef, trunk: TrunkFiles) -> dict:
    """The int8 model, from OpenVINO's float model, calibrated on the shipped calibration photos."""

    if read_export(trunk, "int8") is not None:
        return {"made": []}
    source = read_export(trunk, "float")
    if source is None:
        raise RuntimeError("OpenVINO's float model is missing; the export step makes it first")
    import openvino as ov

    started = time.monotonic()
    model = nncf_quantize(ov.Core().read_model(str(export_files(trunk, "float").model)),
                          preprocess(shipped_photos("int8/calibration")))
    files = export_files(trunk, "int8")
    save(model, files)
    meta = {**source, "key": files.key, "created_at": time.time(), "seconds": round(time.monotonic() - started, 1)}
    atomic_write_text(files.meta, json.dumps(meta, indent=2) + "\n")
    return {"made": ["int8"]}


def reference_outputs(ref: ModelRef, trunk: TrunkFiles, part: str) -> list[np.ndarray]:
    """Keras' outputs on a set of check photos, then the categories its features give under ``ref``'s head."""
    meta = read_export(trunk, "reference")
    if meta is None:
        raise RuntimeError("Keras' reference outputs are missing; the export step makes them first")
    with np.load(export_files(trunk, "reference").model) as arrays:
        outputs = [arrays[f"{part}:{name}"] for name in meta["outputs"]]
    categorizer = ref.categorizer()
    return [*outputs, categorizer.probabilities(outputs[0])] if categorizer is not None else outputs


def check(ref: ModelRef, trunk: TrunkFiles, weights: WeightsFile | None, threads: int, engines: list[str],
          timing: bool) -> list[dict]:
    """Each engine's fidelity on its check photos and, when ``timing``, its speed; an engine that cannot
    be loaded or run is reported with its error, not raised."""
    results = []
    for name in engines:
        engine = ENGINES[name]
        part = photo_set(engine)
        result: dict = {"engine": name, "photos": part, "bar": bar(engine)}
        try:
            embedder = build_engine(engine, ref, trunk, weights, threads)
            x = preprocess(shipped_photos(part))
            candidate = _outputs(embedder, x)
            if embedder.categorizer is not None:
                candidate.append(embedder.categorizer.probabilities(candidate[0]))
            result["check"] = compare(reference_outputs(ref, trunk, part), candidate)
            result["faithful"] = faithful(engine, result["check"])
            if timing:
                result["images_per_s"] = images_per_second(embedder, preprocess(
                    shipped_photos(REDUCED_SET)[:TIMING_BATCH]))
        except Exception as exc:  # a library that cannot run this engine here: a verdict, not a crash
            result.update(faithful=False, error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                          if str(exc).strip() else type(exc).__name__)
        results.append(result)
    return results


def cold(ref: ModelRef, trunk: TrunkFiles, weights: WeightsFile | None, threads: int, engine: str) -> dict:
    """Load ``engine`` and embed one photo, as a one-off query does; the parent times the whole process."""
    embedder = build_engine(engine, ref, trunk, weights, threads)
    embedder.embed(shipped_photos(FLOAT_SET)[:1])
    return {"engine": engine}
