"""What ``cbir status`` reports; reads SQLite and JSON only, never TensorFlow or FAISS."""

from __future__ import annotations

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
        )
    finally:
        reader.close()
