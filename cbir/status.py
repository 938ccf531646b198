"""What ``cbir status`` reports; reads SQLite and JSON only, never TensorFlow or FAISS."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class IndexStatus:
    index_dir: str
    exists: bool
    images: int = 0
    model_id: str | None = None
    model: str | None = None
    dim: int = 0
    roots: list[str] | None = None
    disk_bytes: int = 0
    search_index_current: bool = False
    categories: dict[str, int] | None = None
    search_index: str | None = None
    tagged: int = 0  # images with tags (`cbir find`)
    engines: dict | None = None  # which engine runs on this machine, for bulk work and for a query, and why

    def as_dict(self) -> dict:
        return asdict(self)


def index_status(index_dir: Path) -> IndexStatus:
    from index_store.catalog import CatalogReader, catalog_exists
    from index_store.manifest import read_manifest

    if not catalog_exists(index_dir):
        return IndexStatus(str(index_dir), exists=False)
    reader = CatalogReader.open(index_dir)
    try:
        manifest = read_manifest(index_dir)
        return IndexStatus(
            index_dir=str(index_dir),
            exists=True,
            images=reader.count(),
            model_id=reader.model_id,
            model=reader.model_ref,
            dim=reader.dim,
            roots=reader.roots(),
            disk_bytes=reader.disk_bytes(),
            search_index_current=bool(manifest and manifest.generation == reader.generation),
            categories=reader.category_counts(),
            search_index=manifest.description or manifest.index_type if manifest else None,
            tagged=reader.tagged_count(),
            engines=engines_on_this_machine(reader.model_id, reader.model_ref),
        )
    finally:
        reader.close()


def engines_on_this_machine(model_id: str | None, model_ref: str | None = None) -> dict | None:
    """The engines chosen for the index's trunk on this machine ({"bulk": ..., "query": ...}), or None when
    they are not measured here yet. Reads the cache's JSON only."""
    from index_store.catalog import trunk_of
    from indexer.engines.profile import find_profile

    if not model_id:
        return None
    model_dir = Path(model_ref) if model_ref and os.path.isdir(model_ref) else None
    profile = find_profile(trunk_of(model_id), model_dir)
    if profile is None or profile.bulk is None or profile.query is None:
        return None
    return {"bulk": {"engine": profile.bulk.engine, "reason": profile.bulk.reason},
            "query": {"engine": profile.query.engine, "reason": profile.query.reason},
            "measured_at": profile.measured_at}
