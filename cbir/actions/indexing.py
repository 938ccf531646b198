"""`cbir index`: embed every image under some folders into the index, touching only what changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cbir.actions.progress import QUIET, Progress
from cbir.errors import CbirError, UsageError
from cbir.session import adopt_head, open_store
from cbir.status import IndexStatus, index_status
from cbir.text import quote_path
from index_store.catalog import CATALOG_FILE
from index_store.manifest import MANIFEST_FILE
from index_store.publish import FAISS_FILE
from index_store.writer import IndexStore
from indexer.embedder import Embedder
from indexer.engines.load import load_embedder
from indexer.model import resolve_model
from indexer.pipeline import IndexRun, IndexSummary, estimate_work
from indexer.ray_index import RayIndexRun, engine_spec


def index(index_dir: Path, folders: list[str], *, model: str | None = None, weights: str | None = None,
          runtime: str | None = None, batch_size: int = 32, workers: int | None = None, threads: int | None = None,
          index_type: str | None = None, ray_address: str | None = None, rebuild: bool = False,
          progress: Progress = QUIET) -> dict:
    """Index ``folders`` (none: every folder indexed before) into the index at ``index_dir``; the summary.

    ``rebuild`` first sets the catalog and its search index aside (in a ``damaged-TIME`` folder inside the
    index: nothing is deleted), for a catalog too damaged to mend; the clean journal and thumbnails stay.
    """
    roots = [os.path.abspath(f) for f in folders]
    if rebuild:
        roots = roots or _roots_if_readable(index_dir)
        if not roots:
            raise UsageError("--rebuild needs the folders to index: the damaged catalog does not say them")
        aside = set_aside(index_dir)
        if aside is not None:
            progress.note(f"set the old catalog and search index aside in {quote_path(aside)}")
    roots = roots or known_roots(index_dir)
    loaded: dict[str, Embedder] = {}

    def claim(status: IndexStatus):  # with the lock held, so a busy index fails before the model loads
        ref = resolve_model(model, status.model)
        work = estimate_work(roots, status.images, index_dir)
        loaded["embedder"] = embedder = load_embedder(weights, ref, runtime, threads, work=work)
        return embedder.model_id, embedder.dim, ref.ref

    with open_store(index_dir, claim) as store:
        embedder = loaded["embedder"]
        adopt_head(store, embedder)
        if index_type:
            store.set_index_type(index_type)
        cluster = None
        if ray_address is not None:
            cluster = (engine_spec(embedder, runtime, threads), None if ray_address == "local" else ray_address)
        summary = index_into(store, embedder, roots, batch_size=batch_size, workers=workers, cluster=cluster,
                             progress=progress)
    return {"index": str(index_dir), **summary.as_dict()}


def _roots_if_readable(index_dir: Path) -> list[str]:
    try:
        return index_status(index_dir).roots or []
    except CbirError:
        return []


def set_aside(index_dir: Path) -> Path | None:
    """Move the catalog, its WAL files, the search index and its manifest into ``damaged-TIME`` inside the
    index folder; None when there was nothing to move."""
    names = [CATALOG_FILE, CATALOG_FILE + "-wal", CATALOG_FILE + "-shm", FAISS_FILE, MANIFEST_FILE]
    present = [index_dir / n for n in names if (index_dir / n).exists()]
    present += sorted(index_dir.glob("*.ivfdata"))
    if not present:
        return None
    aside = index_dir / time.strftime("damaged-%Y%m%d-%H%M%S")
    aside.mkdir()
    lock = IndexStore.lock(index_dir)  # nobody may be writing it while it moves
    try:
        for path in present:
            os.replace(path, aside / path.name)
    finally:
        lock.release()
    return aside


def known_roots(index_dir: Path) -> list[str]:
    """The folders an index was made from, for a run that names none."""
    status = index_status(index_dir)
    if not status.roots:
        raise UsageError(f"no folders given and index {index_dir} has none yet: run `cbir index DIR`")
    missing = [r for r in status.roots if not os.path.isdir(r)]
    if missing:
        raise UsageError(f"indexed folder {missing[0]} no longer exists; name the folders to index")
    return status.roots


def index_into(store: IndexStore, embedder: Embedder, folders: list[str], *, batch_size: int = 32,
               workers: int | None = None, register: bool = True, cluster=None,
               progress: Progress = QUIET) -> IndexSummary:
    """Index ``folders`` into an open store (``register``: they become indexed roots); the summary is also
    said as a note. ``cluster``, (engine spec, Ray address or None for a local instance), embeds on Ray."""
    if cluster is not None:
        job: IndexRun = RayIndexRun(store, embedder, cluster[0], cluster[1], on_skip=progress.skipped,
                                    on_progress=progress.advance)
    else:
        job = IndexRun(store, embedder, batch_size=batch_size, workers=workers, on_skip=progress.skipped,
                       on_progress=progress.advance)
    progress.phase("indexing", job.count_files(folders))
    summary = job.run(folders, register=register)
    rate = (summary.added + summary.updated) / summary.seconds if summary.seconds else 0.0
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(summary.skipped.items()))
    progress.note(
        f"{summary.added} added, {summary.updated} updated, {summary.renamed} renamed, "
        f"{summary.removed} removed, {summary.unchanged} unchanged, {summary.skipped_total} skipped"
        + (f" ({skipped})" if skipped else "")
        + f" in {summary.seconds:.1f}s ({rate:.1f} images/s embedded by {embedder.runtime}); "
        f"index: {quote_path(store.index_dir)}")
    return summary
