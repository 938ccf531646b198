"""The search index (FAISS) of a catalog: loading the published one, building one, publishing a new one.

The FAISS file is a cache of the catalog's vectors, stamped in the manifest with the catalog generation
it was built from and with its own size and CRC-32; when a stamp differs it is rebuilt from the catalog
(a reader in memory, the next writer on disk). A writer publishes after each run: it patches the
published index with the run's changes where it can, else it builds a new one.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from index_store.atomic import atomic_write
from index_store.catalog import CATALOG_FILE, CatalogReader, damaged_catalog, vectors_by_id
from index_store.db import connect
from index_store.faiss_index import (
    IndexPlan,
    build_index,
    can_patch,
    cap_probes,
    describe_index,
    estimate_bytes,
    estimate_disk_bytes,
    faiss_of,
    plan_index,
    read_index,
    tune,
    write_index,
)
from index_store.hashing import file_crc32
from index_store.manifest import Manifest, read_manifest, write_manifest
from index_store.ondisk import DATA_SUFFIX, Reranked, data_file_name, open_ondisk, patch_ondisk
from index_store.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

FAISS_FILE = "vectors.faiss"


def index_plan(reader: CatalogReader) -> IndexPlan:
    """The kind of index the catalog calls for now: the user's --index-type choice at its size."""
    return plan_index(reader.index_choice, reader.count())


def published_index(reader: CatalogReader):
    """The FAISS file if its manifest matches this catalog and the file matches its manifest, else None."""
    manifest = read_manifest(reader.index_dir)
    if not manifest or manifest.generation != reader.generation or manifest.model_id != reader.model_id:
        return None
    try:
        index = _open_published(reader, manifest)
    except _Mismatch as exc:
        say = log.info if manifest.faiss_crc32 is None else log.warning  # an older cbir's: rebuilt once, quietly
        say("%s; rebuilding it from the catalog", exc)
        return None
    tune(index, IndexPlan(manifest.index_type, manifest.nlist, manifest.nprobe))
    return index


def published_problem(reader: CatalogReader) -> str | None:
    """Why the published search index cannot serve this catalog as it is, or None when it can."""
    manifest = read_manifest(reader.index_dir)
    if manifest is None:
        return "there is no manifest (it is made on the next index)"
    if manifest.generation != reader.generation or manifest.model_id != reader.model_id:
        return "it is behind the catalog (an index run was interrupted between its commits and its publish)"
    try:
        _open_published(reader, manifest)
    except _Mismatch as exc:
        return str(exc)
    return None


class _Mismatch(Exception):
    """The published files are not what the manifest and the catalog say they are."""


def _open_published(reader: CatalogReader, manifest: Manifest):
    path = reader.index_dir / FAISS_FILE
    if manifest.faiss_crc32 is None:
        raise _Mismatch(f"{path} was written by an older cbir that kept no checksum")
    if not _file_matches(path, manifest) or not _data_matches(reader.index_dir, manifest):
        raise _Mismatch(f"{path} does not match the size and checksum in its manifest")
    try:
        if manifest.index_type == "ivfpq":
            index = _reranked(reader, open_ondisk(path, reader.index_dir / manifest.ivf_data_file))
        else:
            index = read_index(path)
    except Exception as exc:  # a torn or foreign file: the catalog can always rebuild it
        raise _Mismatch(f"{path} is unreadable ({str(exc).splitlines()[0][:100] if str(exc) else exc})") from exc
    if faiss_of(index).d != reader.dim or manifest.dim != reader.dim:
        raise _Mismatch(f"{path} holds {faiss_of(index).d}-d vectors, not the catalog's {reader.dim}-d")
    if index.ntotal != reader.count() or describe_index(index) != (manifest.index_type, manifest.nlist):
        raise _Mismatch(f"{path} is not the index its manifest describes")
    return index


def _reranked(reader: CatalogReader, index, keep_alive: object = None) -> Reranked:
    """An on-disk index that re-scores its shortlists from this catalog, on a connection of its own (the
    index may outlive this reader, as in the web server)."""
    conn = connect(reader.index_dir / CATALOG_FILE, readonly=True, damaged=damaged_catalog)
    lock = threading.Lock()
    dim = reader.dim

    def vectors_of(ids: list[int]) -> dict[int, np.ndarray]:
        with lock:
            return {int(i): v for found, vectors in vectors_by_id(conn, ids, dim)
                    for i, v in zip(found, vectors, strict=True)}

    return Reranked(index, vectors_of, keep_alive)

def load_search_index(reader: CatalogReader, max_nprobe: int | None = None):
    """The published search index (rebuilt from the catalog when stale); ``max_nprobe`` caps how
    many inverted lists an IVF index visits per query, for searches that only want close neighbours."""
    index = published_index(reader)
    if index is None:
        index = build_search_index(reader, index_plan(reader))
    if max_nprobe is not None:
        cap_probes(index, max_nprobe)
    return index

def build_search_index(reader: CatalogReader, plan: IndexPlan, data_path: Path | None = None):
    """Build the search index from the catalog; an on-disk one writes its lists to ``data_path``, or, for a
    reader that found the published one stale, to a temporary folder that lives as long as the index."""
    count = reader.count()
    log.info("building the search index (%s) from %d stored vectors, about %.0f MB", plan.description, count,
             (estimate_bytes(plan, count, reader.dim) + estimate_disk_bytes(plan, count)) / 1e6)
    if plan.kind != "ivfpq":
        return build_index(plan, reader.dim, reader.iter_vectors, reader.sample_vectors)
    keep_alive = None
    if data_path is None:
        keep_alive = tempfile.TemporaryDirectory(prefix="cbir-ivfpq-")
        data_path = Path(keep_alive.name) / data_file_name(FAISS_FILE, reader.generation)
    index = build_index(plan, reader.dim, reader.iter_vectors, reader.sample_vectors, data_path)
    return _reranked(reader, index, keep_alive)


def publish(store: CatalogReader, added: set[int], removed: set[int], start_generation: int) -> bool | None:
    """Write the FAISS file and manifest for the catalog's generation (the writer has committed); patch the
    published index with the ``added`` and ``removed`` ids when it was built from ``start_generation``.
    Returns whether it patched, or None when nothing had changed since the last publish."""
    manifest = read_manifest(store.index_dir)
    faiss_path = store.index_dir / FAISS_FILE
    plan = index_plan(store)
    same_plan = manifest is not None and (manifest.index_type, manifest.nlist) == (plan.kind, plan.nlist)
    intact = manifest is not None and same_plan and _file_matches(faiss_path, manifest) \
        and _header_dimension(faiss_path) == store.dim
    if manifest is not None and intact and (manifest.generation, manifest.model_id) == (store.generation,
                                                                                         store.model_id):
        return None  # nothing changed since the last publish
    patched = False
    index = None
    # An on-disk index's lists go to a new file named for this generation; readers keep the old one.
    data_path = store.index_dir / data_file_name(FAISS_FILE, store.generation) if plan.kind == "ivfpq" else None
    if (manifest is not None and intact and manifest.generation == start_generation
            and manifest.model_id == store.model_id and can_patch(plan, removing=bool(removed))):
        index = _apply_changes(store, faiss_path, plan, manifest, data_path, added, removed)
        patched = index is not None
    if index is None:
        if same_plan and manifest is not None and not intact:
            _report_mismatch(faiss_path, manifest)
        index = build_search_index(store, plan, data_path)
    written: dict[str, int] = {}

    def write(tmp: Path) -> None:
        write_index(faiss_of(index), tmp)
        written.update(bytes=os.path.getsize(tmp), crc32=file_crc32(tmp))

    atomic_write(faiss_path, write)
    write_manifest(
        store.index_dir,
        Manifest(SCHEMA_VERSION, store.model_id or "", store.dim, int(index.ntotal), store.generation, plan.kind,
                 nlist=plan.nlist, nprobe=plan.nprobe, index_choice=store.index_choice,
                 description=plan.description,
                 estimated_bytes=estimate_bytes(plan, int(index.ntotal), store.dim),
                 faiss_bytes=written["bytes"], faiss_crc32=written["crc32"],
                 ivf_data_file=data_path.name if data_path is not None else "",
                 ivf_data_bytes=os.path.getsize(data_path) if data_path is not None else 0),
    )
    remove_unused_data_files(store.index_dir)
    return patched

def _apply_changes(store: CatalogReader, faiss_path: Path, plan: IndexPlan, manifest: Manifest,
                   data_path: Path | None, added: set[int], removed: set[int]):
    """Patch the published FAISS index with this session's changes instead of rebuilding it."""
    if plan.kind == "ivfpq" and data_path is not None:
        if data_path.name == manifest.ivf_data_file:
            return None
        try:
            index = patch_ondisk(faiss_path, store.index_dir / manifest.ivf_data_file, data_path,
                                 np.fromiter(removed, np.int64),
                                 store.iter_vectors(sorted(added)))
        except Exception as exc:  # a damaged published index: the catalog rebuilds it
            log.warning("could not patch %s (%s); rebuilding it from the catalog", faiss_path, exc)
            return None
        tune(index, plan)
        return _reranked(store, index) if index.ntotal == store.count() else None
    try:
        index = read_index(faiss_path)
    except Exception:
        return None
    if describe_index(index) != (plan.kind, plan.nlist):
        return None
    tune(index, plan)
    if removed:
        index.remove_ids(np.fromiter(removed, np.int64))
    for ids, vectors in store.iter_vectors(sorted(added)):
        if len(ids):
            index.add_with_ids(vectors, ids)
    return index if index.ntotal == store.count() else None

def remove_unused_data_files(index_dir: Path) -> None:
    """On-disk lists of earlier generations, and shards a killed build left; a reader that has one mapped
    keeps reading it (the file lives on until it is unmapped)."""
    manifest = read_manifest(index_dir)
    keep = manifest.ivf_data_file if manifest else ""
    for path in [*index_dir.glob(f"*{DATA_SUFFIX}"), *index_dir.glob(f".*{DATA_SUFFIX}.shard*.tmp")]:
        if path.name != keep:
            try:
                path.unlink()
            except OSError:
                pass


def _report_mismatch(path: Path, manifest: Manifest) -> None:
    if manifest.faiss_crc32 is None:
        log.info("%s was written by an older cbir that kept no checksum; rebuilding it once", path)
    else:
        log.warning("%s does not match the checksum in its manifest; rebuilding it from the catalog", path)


def _data_matches(index_dir: Path, manifest: Manifest) -> bool:
    """An on-disk index's lists file is there at the size written (the header's checksum covers the rest)."""
    if manifest.index_type != "ivfpq":
        return True
    try:
        return bool(manifest.ivf_data_file) and \
            os.path.getsize(index_dir / manifest.ivf_data_file) == manifest.ivf_data_bytes
    except OSError:
        return False


def _header_dimension(path: Path) -> int | None:
    """The vector dimension a FAISS file declares: every index FAISS writes starts with a four-letter code and
    then its dimension (a little-endian int32), an ID map included."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return int.from_bytes(head[4:8], "little", signed=True) if len(head) == 8 else None


def _file_matches(path: Path, manifest: Manifest) -> bool:
    """The FAISS file is the one the manifest was written for (size and checksum)."""
    if manifest.faiss_crc32 is None:
        return False  # written before checksums were recorded: rebuilt once
    try:
        return os.path.getsize(path) == manifest.faiss_bytes and file_crc32(path) == manifest.faiss_crc32
    except OSError:
        return False
