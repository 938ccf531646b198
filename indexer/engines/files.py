"""Where each trunk's exports live, and the key that ties them to what they were made from.

Every export holds the network only (pooled features, and the ImageNet scores for the ImageNet trunk);
categories are computed from the features in NumPy (indexer.categorizer), so every head on one trunk
shares its exports: the default model and plain ImageNet use the same files. They are keyed by the
content of the weights they come from and cached: beside a trained model folder whose trunk was
fine-tuned, when that is writable, else in cbir's cache. A changed weight file or trunk gives a new
key, so a stale export is never used. Exports do not depend on the CPU; which of them is faithful and
fast does, and is kept per machine (indexer.engines.profile).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cbir.config import cache_dir
from indexer.model import ModelRef, slug
from indexer.weights import file_sha256

# 3: one key per trunk, exports no longer carry a fidelity verdict (that is per machine now).
EXPORT_FORMAT = 3


@dataclass(frozen=True)
class RuntimeFiles:
    key: str
    model: Path  # the export itself (.tflite, .xml, .npz)
    meta: Path  # its sidecar: model id, output layout

    def read_meta(self, companions: tuple[str, ...] = ()) -> dict | None:
        """The sidecar when it is of this key and format and the export's files are there (the model, and
        beside it a file for each suffix in ``companions``)."""
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != self.key or meta.get("format") != EXPORT_FORMAT:
            return None
        if not all(f.is_file() for f in [self.model, *(self.model.with_suffix(s) for s in companions)]):
            return None
        return meta


@dataclass(frozen=True)
class TrunkFiles:
    """The folder and names of one trunk's exports."""

    folder: Path
    stem: str
    key: str

    def export(self, name: str, suffix: str) -> RuntimeFiles:
        base = self.folder / f"{self.stem}-{name}-{self.key}"
        return RuntimeFiles(self.key, base.with_suffix(suffix), base.with_suffix(".json"))

    def profile(self, machine: str) -> Path:
        return self.folder / f"{self.stem}-engines-{self.key}-{machine}.json"


def trunk_key(ref: ModelRef, weights_sha256: str | None) -> str:
    """A digest of everything the exports are made from: the trunk's weights and the export format."""
    parts = [f"format={EXPORT_FORMAT}"]
    if ref.trunk_file is not None:
        parts.append("trunk=" + file_sha256(ref.trunk_file))
    else:
        parts.append(f"imagenet={weights_sha256}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def trunk_files(ref: ModelRef, key: str) -> TrunkFiles:
    folder, stem = cache_dir() / "runtime", "imagenet-trunk"
    if ref.trunk_file is not None and ref.directory is not None:  # a fine-tuned trunk: its exports go with it
        stem = slug(ref.ref)
        beside = ref.directory / "runtime"
        if os.access(beside if beside.is_dir() else ref.directory, os.W_OK):
            folder = beside
    return TrunkFiles(folder, stem, key)


def prune_old_formats(trunk: TrunkFiles) -> list[Path]:
    """Remove exports of this trunk's name that an older cbir made in a format this one cannot use (they
    would otherwise sit in the cache for good); returns what was removed."""
    removed = []
    for meta in trunk.folder.glob(f"{trunk.stem}-*.json"):
        if "-engines-" in meta.name:
            continue
        try:
            fmt = json.loads(meta.read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(fmt, int) and fmt >= EXPORT_FORMAT:
            continue
        for path in [meta, *(meta.with_suffix(s) for s in (".tflite", ".xml", ".bin", ".npz"))]:
            if path.exists():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
