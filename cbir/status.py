"""What ``cbir status`` reports: the catalog's counts, the model, the search index and the engine in use."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cbir.watching.state import read_state
from index_store.catalog import CatalogReader, catalog_exists, trunk_of
from index_store.manifest import read_manifest
from indexer.engines.profile import find_profile
from indexer.tags import tags_current


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
    tags_current: bool = True  # false: made by an older vocabulary or rules; `cbir index` remakes them
    engines: dict | None = None  # which engine runs on this machine, for bulk work and for a query, and why
    watcher: dict | None = None  # the `cbir watch` keeping this index current, if one runs: pid, since, folders

    def as_dict(self) -> dict:
        return asdict(self)


def index_status(index_dir: Path) -> IndexStatus:
    if not catalog_exists(index_dir):
        return IndexStatus(str(index_dir), exists=False)
    with CatalogReader.open(index_dir) as reader:
        return status_of(reader)


def status_of(reader: CatalogReader | None, index_dir: Path | None = None) -> IndexStatus:
    """The status of an open catalog (a reader, or the writer itself); None: no index yet at ``index_dir``."""
    if reader is None:
        return IndexStatus(str(index_dir), exists=False)
    manifest = read_manifest(reader.index_dir)
    return IndexStatus(
        index_dir=str(reader.index_dir),
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
        tags_current=tags_current(reader.stored_tags_version(), reader.model_id),
        engines=engines_on_this_machine(reader.model_id, reader.model_ref),
        watcher=read_state(reader.index_dir),
    )


def engines_on_this_machine(model_id: str | None, model_ref: str | None = None) -> dict | None:
    """The engines chosen for the index's trunk on this machine ({"bulk": ..., "query": ...}), or None when
    they are not measured here yet. Reads the cache's JSON only."""
    if not model_id:
        return None
    model_dir = Path(model_ref) if model_ref and os.path.isdir(model_ref) else None
    profile = find_profile(trunk_of(model_id), model_dir)
    if profile is None or profile.bulk is None or profile.query is None:
        return None
    return {"bulk": {"engine": profile.bulk.engine, "reason": profile.bulk.reason},
            "query": {"engine": profile.query.engine, "reason": profile.query.reason},
            "measured_at": profile.measured_at}
