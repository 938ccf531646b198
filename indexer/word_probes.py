"""Word probes: tags for everyday words that no ImageNet class stands for (sunset, tree, city...), from the embedding.

Each probe is a logistic regression on the unit-length embedding, trained by ``tools/build_word_probes.py``
on photos from Debian packages judged by eye (``cbir/data/tags/word_probes.json``). Its score is a
probability, so it is the tag's score for its synset, as the sum over classes is for a class's ancestors. It
counts only for its own synset, not its ancestors: "plant" still means what ImageNet's classes show. A probe
is shown from its own bar (``show_from``, where it was right at least 80% of the time on sources left out of
its training), and not at all when it never was.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files

import numpy as np


@dataclass(frozen=True)
class WordProbes:
    ids: list[str]  # WordNet synset ids, one per probe
    weights: np.ndarray  # (probes, 2048) float32
    bias: np.ndarray  # (probes,)
    show_from: dict[str, float | None]  # synset id -> the score from which its tag is shown
    trunk: str  # the id of the trunk whose embeddings they were trained on
    digest: str

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N, probes) probabilities for unit-length embeddings."""
        logits = np.asarray(vectors, np.float32) @ self.weights.T + self.bias  # no copy of float32 vectors
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


@functools.lru_cache(maxsize=1)
def load_word_probes() -> WordProbes:
    raw = (files("cbir") / "data" / "tags" / "word_probes.json").read_bytes()
    data = json.loads(raw)
    probes = data["probes"]
    return WordProbes([p["id"] for p in probes], np.array([p["weights"] for p in probes], np.float32),
                      np.array([p["bias"] for p in probes], np.float32),
                      {p["id"]: p["show_from"] for p in probes}, data["trunk"], hashlib.sha256(raw).hexdigest()[:12])
