"""The bars an engine must clear to be used: faithful to float32 Keras on real photos that ship with cbir.

A float32 engine computes the same function as Keras, so it is checked on the nine photos of
``cbir/data/check``: embedding cosine at least ``MIN_COSINE`` on every one and the same ImageNet class
and category on all of them. An engine that computes below float32 (int8, bf16, f16) is checked on the
332 photos of ``cbir/data/int8/check`` (none used to calibrate int8): embedding cosine at least
``MIN_COSINE`` on every one, and the same category on at least ``MIN_REDUCED_AGREEMENT`` of them
(photos whose two likeliest categories are nearly tied may swap).
"""

from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

from indexer.engines.table import Engine
from indexer.loader import decode

MIN_COSINE = 0.99
MIN_FLOAT_AGREEMENT = 1.0
MIN_REDUCED_AGREEMENT = 0.99
FLOAT_SET, REDUCED_SET = "check", "int8/check"


def photo_set(engine: Engine) -> str:
    return REDUCED_SET if engine.reduced else FLOAT_SET


@functools.cache
def shipped_photos(part: str) -> np.ndarray:
    """Photos that ship with cbir (``cbir/data/<part>``), as the network sees them: 224x224 uint8 RGB."""


    folder = files("cbir").joinpath("data", *part.split("/"))
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jpg"))
    return np.stack([decode((folder / name).read_bytes()) for name in names])


def bar(engine: Engine) -> dict[str, float]:
    return {"min_cosine": MIN_COSINE,
            "agreement": MIN_REDUCED_AGREEMENT if engine.reduced else MIN_FLOAT_AGREEMENT}


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    """Fidelity of ``candidate`` outputs to ``reference``: embedding cosine (first output) and top-1
    agreement of every other output (ImageNet scores, category probabilities)."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    cosine = (unit(reference[0]) * unit(candidate[0])).sum(axis=1)
    agreement = [float((r.argmax(1) == c.argmax(1)).mean()) for r, c in zip(reference[1:], candidate[1:], strict=True)]
    return {"images": len(cosine), "min_cosine": round(float(cosine.min()), 5),
            "p1_cosine": round(float(np.percentile(cosine, 1)), 5), "mean_cosine": round(float(cosine.mean()), 5),
            "top1_agreement": [round(a, 4) for a in agreement]}


def faithful(engine: Engine, check: dict) -> bool:
    """Whether a check's figures clear the engine's bar. A reduced-precision engine is held to its category
    agreement (the last figure) only: ImageNet's 1,000 classes tie far more often than five categories."""
    agreements = check["top1_agreement"]
    if engine.reduced:
        agreements = agreements[-1:] if len(agreements) > 1 else []
    return check["min_cosine"] >= MIN_COSINE and all(a >= bar(engine)["agreement"] for a in agreements)
