"""The cached LiteRT export of each trunk.

The export holds the network only (pooled features, and the ImageNet scores
for the ImageNet trunk); categories are computed from the features in NumPy
(indexer.categorizer), so every head on one trunk shares one export: the
default model and plain ImageNet use the same file. It is keyed by the
content of the files it comes from, checked against Keras on real photos when
it is made, and cached: beside a trained model folder whose trunk was
fine-tuned, when that is writable, else in cbir's cache. A changed weight
file or trunk gives a new key, so a stale export is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.config import cache_dir
from indexer.litert import DEFAULT_QUANTIZATION
from indexer.model import ModelRef, slug
from indexer.runtime_choice import inference_threads
from indexer.weights import file_sha256

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2  # 2: the trunk only; categories are computed from its features
# The bar an export must clear on the check photos to be used instead of Keras.
MIN_COSINE = 0.99
MIN_CATEGORY_AGREEMENT = 1.0


@dataclass(frozen=True)
class RuntimeFiles:
    key: str
    model: Path  # the .tflite file
    meta: Path  # its sidecar: model id, output layout, the check's figures

    def read_meta(self, fmt: int = EXPORT_FORMAT, companions: tuple[str, ...] = ()) -> dict | None:
        """The sidecar when it is of this key and format and, for a faithful export, its files are there
        (the model, and beside it a file for each suffix in ``companions``)."""
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != self.key or meta.get("format") != fmt:
            return None
        files = [self.model, *(self.model.with_suffix(suffix) for suffix in companions)]
        if meta.get("faithful") and not all(f.is_file() for f in files):
            return None
        return meta


def runtime_key(ref: ModelRef, weights_sha256: str | None, quantization: str = DEFAULT_QUANTIZATION) -> str:
    """A digest of everything the export is made from: the trunk's weights, quantization, format."""
    parts = [f"format={EXPORT_FORMAT}", f"quantization={quantization}"]
    if ref.trunk_file is not None:
        parts.append("trunk=" + file_sha256(ref.trunk_file))
    else:
        parts.append(f"imagenet={weights_sha256}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def runtime_files(ref: ModelRef, key: str, quantization: str = DEFAULT_QUANTIZATION,
                  suffix: str = ".tflite") -> RuntimeFiles:
    folder = cache_dir() / "runtime"
    stem = f"imagenet-trunk-{quantization}-{key}"
    if ref.trunk_file is not None and ref.directory is not None:  # a fine-tuned trunk: its export goes with it
        stem = f"{slug(ref.ref)}-{quantization}-{key}"
        beside = ref.directory / "runtime"
        if os.access(beside if beside.is_dir() else ref.directory, os.W_OK):
            folder = beside
    return RuntimeFiles(key, folder / f"{stem}{suffix}", folder / f"{stem}.json")


def check_images() -> np.ndarray:
    """The real photos (224x224) an export is checked on; they ship inside the package."""
    from importlib.resources import files

    from indexer.loader import decode

    folder = files("cbir") / "data" / "check"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jpg"))
    return np.stack([decode((folder / name).read_bytes()) for name in names])


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    """Fidelity of ``candidate`` outputs to ``reference``: embedding cosine and top-1 agreement."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    cosine = (unit(reference[0]) * unit(candidate[0])).sum(axis=1)
    agreement = [float((r.argmax(1) == c.argmax(1)).mean()) for r, c in zip(reference[1:], candidate[1:], strict=True)]
    return {"images": len(cosine), "min_cosine": round(float(cosine.min()), 5),
            "p1_cosine": round(float(np.percentile(cosine, 1)), 5), "mean_cosine": round(float(cosine.mean()), 5),
            "top1_agreement": [round(a, 4) for a in agreement]}


def build_export(keras_embedder, files: RuntimeFiles, quantization: str = DEFAULT_QUANTIZATION) -> dict:
    """Export, check against Keras on the check photos, and cache the result (faithful or not)."""
    from index_store.atomic import atomic_write, atomic_write_text
    from indexer.litert import LiteNet, export_tflite
    from indexer.resnet import preprocess

    started = time.monotonic()
    data = export_tflite(keras_embedder.net, quantization)
    x = preprocess(check_images())
    reference = keras_embedder.raw_outputs(x)
    candidate = LiteNet(data, threads=inference_threads())(x)
    categorizer = keras_embedder.categorizer
    if categorizer is not None:  # the categories the built-for model gives, from each engine's features
        reference = [*reference, categorizer.probabilities(reference[0])]
        candidate = [*candidate, categorizer.probabilities(candidate[0])]
    check = compare(reference, candidate)
    faithful = (check["min_cosine"] >= MIN_COSINE
                and all(a >= MIN_CATEGORY_AGREEMENT for a in check["top1_agreement"]))
    meta = {
        "format": EXPORT_FORMAT, "key": files.key, "quantization": quantization, "faithful": faithful,
        "trunk_id": keras_embedder.trunk_id, "built_for": keras_embedder.model.ref,
        "outputs": keras_embedder.output_names, "check": check,
        "bar": {"min_cosine": MIN_COSINE, "top1_agreement": MIN_CATEGORY_AGREEMENT},
        "seconds": round(time.monotonic() - started, 1), "created_at": time.time(),
    }
    files.model.parent.mkdir(parents=True, exist_ok=True)
    if faithful:
        atomic_write(files.model, lambda tmp: Path(tmp).write_bytes(data))
    atomic_write_text(files.meta, json.dumps(meta, indent=2) + "\n")
    return meta
