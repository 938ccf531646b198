"""The small JSON manifest written beside the FAISS file (autofaiss' habit)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from index_store.atomic import atomic_write_text

MANIFEST_FILE = "manifest.json"


@dataclass
class Manifest:
    schema_version: int
    model_id: str
    dim: int
    count: int
    generation: int
    index_type: str  # flat, ivf or hnsw
    metric: str = "inner_product"
    nlist: int = 0
    nprobe: int = 0
    index_choice: str = "auto"
    description: str = ""
    estimated_bytes: int = 0
    faiss_file: str = "vectors.faiss"
    written_at: float = 0.0
    cbir_version: str = ""


def read_manifest(index_dir: Path) -> Manifest | None:
    try:
        data = json.loads((index_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        manifest = Manifest(**data)
        manifest.index_type = manifest.index_type.lower()  # schema 1 wrote "Flat"
        return manifest
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(index_dir: Path, manifest: Manifest) -> None:
    from cbir import __version__

    manifest.written_at = time.time()
    manifest.cbir_version = __version__
    atomic_write_text(index_dir / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2) + "\n")
