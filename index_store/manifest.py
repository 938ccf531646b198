"""The small JSON manifest written beside the FAISS file (autofaiss' habit).

The manifest is derived data, like the FAISS file it describes: one that
cannot be read, or whose fields have the wrong types or values, counts as
missing, and the next reader or writer rebuilds both from the catalog.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cbir import __version__
from index_store.atomic import atomic_write_text

MANIFEST_FILE = "manifest.json"
INDEX_KINDS = ("flat", "ivf", "hnsw", "ivfpq")


@dataclass
class Manifest:
    schema_version: int
    model_id: str
    dim: int
    count: int
    generation: int
    index_type: str  # flat, ivf, hnsw or ivfpq
    metric: str = "inner_product"
    nlist: int = 0
    nprobe: int = 0
    index_choice: str = "auto"
    description: str = ""
    estimated_bytes: int = 0
    faiss_file: str = "vectors.faiss"
    written_at: float = 0.0
    cbir_version: str = ""
    faiss_bytes: int = 0  # size of the FAISS file as written
    faiss_crc32: int | None = None  # its checksum; a file that does not match is rebuilt
    ivf_data_file: str = ""  # ivfpq: the file of on-disk inverted lists, beside the FAISS file
    ivf_data_bytes: int = 0  # its size as written (too big to checksum at every load)


_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "str": str, "float": (int, float),
                                              "int | None": (int, type(None))}


def read_manifest(index_dir: Path) -> Manifest | None:
    """The manifest, or None when it is missing or not a valid manifest."""
    try:
        data = json.loads((index_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    known = {f.name: f for f in fields(Manifest)}
    for key, value in data.items():
        spec = known.get(key)
        if spec is None or isinstance(value, bool) or not isinstance(value, _TYPES[str(spec.type)]):
            return None
    try:
        manifest = Manifest(**data)
    except TypeError:  # a required field is missing
        return None
    manifest.index_type = manifest.index_type.lower()  # schema 1 wrote "Flat"
    if (manifest.index_type not in INDEX_KINDS or min(manifest.dim, manifest.count, manifest.nlist,
                                                       manifest.nprobe, manifest.generation) < 0):
        return None
    return manifest


def write_manifest(index_dir: Path, manifest: Manifest) -> None:

    manifest.written_at = time.time()
    manifest.cbir_version = __version__
    atomic_write_text(index_dir / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2) + "\n")
