"""Reader -> embedder -> writer: index folders incrementally.

Worker threads read, hash and decode files while the model embeds the
previous batch (TensorFlow releases the GIL while it computes). Unchanged
files (same size and mtime) are never opened; a new path whose content hash
matches an indexed file that no longer exists is a rename and keeps its
vector; a byte-identical copy reuses the stored vector without decoding, also
when both copies arrive in the same batch. Whole files wait in memory between
reading and decoding, so the queue is bounded by bytes as well as by count.
Decoding also computes each content's facts for the duplicate check
(indexer.image_facts), stored beside the vector; a root's files indexed
before facts were stored get theirs at the end of its walk.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from cbir.errors import ImageDecodeError
from index_store.catalog import ImageRow
from index_store.writer import IndexStore
from indexer.embedder import Embedder
from indexer.image_facts import FACTS_VERSION, facts_blob
from indexer.loader import FileContent, decode, is_candidate, read_file, supported_extensions
from indexer.tags import tags_version
from indexer.walker import FileEntry, Problem, entry_of, walk_images
from indexer.when_where import NOWHERE, WhenWhere, places, read_when_where

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    renamed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "renamed": self.renamed,
            "removed": self.removed, "unchanged": self.unchanged,
            "skipped": dict(sorted(self.skipped.items())), "seconds": round(self.seconds, 3),
        }


# Bytes of whole files held between reading and decoding, at most (a queue of camera files would
# otherwise hold hundreds of MB).
MAX_BYTES_IN_FLIGHT = 256 << 20


@dataclass
class _Job:
    entry: FileEntry
    row: ImageRow | None  # the catalog row at this path, if any
    digest: str = ""
    twins: list[_Job] = field(default_factory=list)  # byte-identical files met while this one decodes
    facts: bytes | None = None  # the content's encoded facts (indexer.image_facts), once decoded


SkipCallback = Callable[[str, str, str], object]
ProgressCallback = Callable[[int], object]


class IndexRun:
    """One ``cbir index`` over some roots into an open IndexStore."""

    def __init__(
        self,
        store: IndexStore,
        embedder: Embedder,
        *,
        batch_size: int = 32,
        workers: int | None = None,
        on_skip: SkipCallback | None = None,
        on_progress: ProgressCallback | None = None,
        checkpoint_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = max(1, batch_size)
        # One reader/decoder per core: on 2 cores, camera-sized JPEGs (50 ms to decode even in draft mode)
        # went from 11.9 to 13.2 images/s with a second one, and small photos were the same within noise.
        self.workers = workers or os.cpu_count() or 2
        self.on_skip = on_skip or (lambda path, reason, detail: None)
        self.on_progress = on_progress or (lambda n: None)
        self.checkpoint_seconds = checkpoint_seconds
        self.summary = IndexSummary()
        self.extensions = supported_extensions()
        self._last_commit = time.monotonic()
        self._publish_every_s: float | None = None  # publish the search index this often during a run, if set
        self._last_publish = self._last_commit
        self._stored: list[int] = []  # ids of the images embedded and stored by this run

    def count_files(self, roots: list[str]) -> int:
        """A quick first walk (names and stats only) so progress can show time left."""
        return sum(1 for root in roots for item in self._walk(root) if isinstance(item, FileEntry))

    def _walk(self, folder: str) -> Iterator[FileEntry | Problem]:
        """The image files under ``folder``, never entering the index itself."""
        return walk_images(folder, self.extensions, [str(self.store.index_dir)])

    def run(self, roots: list[str], register: bool = True) -> IndexSummary:
        """Index ``roots``; ``register=False`` when they are folders inside already indexed roots."""
        started = time.monotonic()
        self._refresh_tags()
        with self._resources():
            for root in roots:
                self._index_root(root, register)
        self.store.finish()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    @contextmanager
    def _resources(self) -> Iterator[None]:
        """What embedding needs while the roots are walked: here, the threads that read and decode."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="cbir-read") as pool:
            self._pool = pool
            yield

    def _refresh_tags(self) -> None:
        """Tags of every indexed image, from the catalog alone, when the vocabulary, thresholds or model
        changed since they were computed (or the index predates tags); nothing is embedded again."""

        version = tags_version(self.embedder.model_id)
        if self.store.stored_tags_version() != version:
            count = self.store.retag(self.embedder.tagger, version)
            self.store.commit()
            if count:
                log.info("tagged %d indexed images from their stored vectors", count)

    # -- stages -------------------------------------------------------------------
    def _index_root(self, root: str, register: bool = True) -> None:
        run = self.store.begin_run(root, register)
        self._run = run
        self._index_items(self._walk(root), run)
        self.summary.removed += self.store.finish_root(root, run)
        self._fill_facts(root)
        self._fill_when(self.store.rows_missing_when(root))

    def run_paths(self, changed: list[str], gone: list[str], publish_every_s: float | None = 10.0) -> IndexSummary:
        """Index what changed at some paths, not whole roots (``cbir watch``): each of ``changed`` (a file, or
        a folder that appeared, walked whole) is indexed as a walk would; each of ``gone`` that is indeed gone
        (a file, or a folder and everything indexed under it) leaves the catalog, after the new paths are in,
        so that a rename keeps its vector. Nothing is swept. The search index is published at the end, and
        every ``publish_every_s`` seconds on the way, so that the first photos of a long job can be found
        before its last are in."""
        started = time.monotonic()
        self._publish_every_s = publish_every_s
        self._last_publish = started
        self._refresh_tags()
        run = self.store.begin_run("", register=False)
        self._run = run
        self._stored = []
        with self._resources():
            self._index_items(self._items_at(changed), run)
            for path in gone:
                self.summary.removed += forget_gone(self.store, path)
            self.store.commit()
            # Only what this job embedded: a root-wide look for missing times would read every row of it.
            self._fill_when(self.store.rows_missing_when_of(self._stored))
        self.store.finish()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _items_at(self, paths: list[str]) -> Iterator[FileEntry | Problem]:
        """What a walk would yield for each path: a folder's images, or the file itself when it is an image."""
        inside_index = os.path.realpath(self.store.index_dir) + os.sep
        for path in paths:
            if os.path.realpath(path).startswith(inside_index):
                continue
            if os.path.isdir(path):
                yield from self._walk(path)
                continue
            if not is_candidate(os.path.basename(path), self.extensions) or os.path.basename(path).startswith("."):
                continue
            try:
                info = os.stat(path)
            except OSError:
                continue  # gone again before its turn: its deletion is on its way
            yield entry_of(path, info)

    def _index_items(self, items: Iterable[FileEntry | Problem], run: int) -> None:
        """Read, decode, embed and store the files among ``items`` that are new or changed."""
        reading: deque[tuple[_Job, Future]] = deque()
        self._decoding: deque[tuple[_Job, Future]] = deque()
        self._decoding_by_hash: dict[str, _Job] = {}
        self._in_flight = 0  # bytes of files read or being read and not yet decoded
        window = self.batch_size * 2
        for job in self._files_to_read(items, run):
            reading.append((job, self._pool.submit(read_file, job.entry.path)))
            self._in_flight += job.entry.size
            while len(reading) > window or (len(reading) > 1 and self._in_flight > MAX_BYTES_IN_FLIGHT):
                self._decide(*reading.popleft())
            while self._decoding and (len(self._decoding) >= self.batch_size + window
                                      or self._in_flight > MAX_BYTES_IN_FLIGHT):
                self._embed_batch()
        while reading:
            self._decide(*reading.popleft())
        while self._decoding:
            self._embed_batch()

    def _fill_facts(self, root: str) -> None:
        """Facts for the contents under ``root`` that have none (indexed before they were stored, or on a
        cluster): read once more, on the reading threads."""
        missing = self.store.paths_missing_facts(root, FACTS_VERSION)
        for start in range(0, len(missing), 256):
            part = missing[start: start + 256]
            for (_, digest), blob in zip(part, self._pool.map(_facts_of_file, [p for p, _ in part]), strict=True):
                if blob is not None:
                    self.store.put_facts(digest, FACTS_VERSION, blob)
            self.store.commit()

    def _fill_when(self, missing: list[tuple[int, str, int]]) -> None:
        """When and where the images ``missing`` (id, path, mtime_ns: new, changed, or indexed before times were
        stored) were taken: each file's EXIF, read from its header without decoding."""
        for start in range(0, len(missing), 512):
            part = missing[start: start + 512]
            found = list(self._pool.map(_when_of_file, [(path, mtime) for _, path, mtime in part]))
            located = [(w, (w.latitude, w.longitude)) for w in found
                       if w.latitude is not None and w.longitude is not None]
            named = dict(zip([id(w) for w, _ in located], places([at for _, at in located]), strict=True))
            for (image_id, _, _), w in zip(part, found, strict=True):
                self.store.set_when(image_id, w.taken_at, w.taken_source, w.offset, w.camera, w.latitude,
                                    w.longitude, named.get(id(w)))
            self.store.commit()

    def _files_to_read(self, items: Iterable[FileEntry | Problem], run: int) -> Iterator[_Job]:
        """Files unchanged by name, size and mtime are settled here; the others are yielded."""
        for item in items:
            if isinstance(item, Problem):
                self._skip(item.path, item.reason, item.detail, counted=False)
                continue
            row = self.store.row_by_path(item.path)
            if row and row.stat_matches(item.size, item.mtime_ns):
                self.store.mark_seen(row.id, run)
                self.summary.unchanged += 1
                self._done(1)
                continue
            yield _Job(item, row)

    def _decide(self, job: _Job, future: Future) -> None:
        """With the file's hash known: skip it, relink an existing vector, or decode it."""
        try:
            content: FileContent = future.result()
        except ImageDecodeError as exc:
            self._in_flight -= job.entry.size
            self._skip(job.entry.path, exc.reason, exc.detail)
            return
        job.digest = content.digest
        if self._unchanged(job) or self._joined_twin(job) or self._relinked(job):
            self._in_flight -= job.entry.size  # settled without decoding: its bytes are no longer held
            return
        self._decoding_by_hash[content.digest] = job
        self._decoding.append((job, self._pool.submit(_decode_for_index, content.data)))

    def _joined_twin(self, job: _Job) -> bool:
        """The same bytes are already being decoded for another path: share that result."""
        twin = self._decoding_by_hash.get(job.digest)
        if twin is None:
            return False
        twin.twins.append(job)
        return True

    def _unchanged(self, job: _Job) -> bool:
        """A file touched but not changed (same hash as its row): its stat is updated, nothing else."""
        entry, row = job.entry, job.row
        if row is None or row.hash != job.digest:
            return False
        self.store.update_stat(row.id, entry.size, entry.mtime_ns, self._run)
        self.summary.unchanged += 1
        self._done(1)
        return True

    def _relinked(self, job: _Job) -> bool:
        """A new path with the bytes of an indexed file: a rename when that file is gone, else a copy;
        either way it keeps the stored vector and needs no embedding."""
        entry = job.entry
        if job.row is not None:
            return False
        twins = self.store.rows_by_hash(job.digest)
        moved = next((t for t in twins if not os.path.lexists(t.path)), None)
        if moved is not None:
            self.store.move(moved.id, entry.path, entry.size, entry.mtime_ns, self._run)
            self.summary.renamed += 1
            self._done(1)
            return True
        if twins:
            twin = twins[0]
            self._store(job, self.store.vector(twin.id), twin.category, twin.category_probs,
                        self.store.feature_norm(twin.id))
            self._done(1)
            return True
        return False

    def _embed_batch(self) -> None:
        jobs: list[_Job] = []
        pixels: list[np.ndarray] = []
        for _ in range(min(self.batch_size, len(self._decoding))):
            job, future = self._decoding.popleft()
            self._in_flight -= job.entry.size
            del self._decoding_by_hash[job.digest]
            try:
                decoded, job.facts = future.result()
                pixels.append(decoded)
                jobs.append(job)
            except ImageDecodeError as exc:
                for each in (job, *job.twins):
                    self._skip(each.entry.path, exc.reason, exc.detail)
        if not jobs:
            return
        result = self.embedder.embed(np.stack(pixels))
        self._store_embedded(jobs, result.vectors, result.category_probs, result.norms)

    def _store_embedded(self, jobs: list[_Job], vectors: np.ndarray, category_probs: np.ndarray | None,
                        norms: np.ndarray | None) -> None:
        """Store one embedded batch (and the byte-identical files that share it), then commit it whole."""
        categories = self.embedder.categories(category_probs) or [(None, None)] * len(jobs)
        done = 0
        norms = norms if norms is not None else np.full(len(jobs), np.nan, np.float32)
        tags = self.embedder.tagger(np.arange(len(jobs)), vectors, norms, [c for c, _ in categories],
                                    [p for _, p in categories])
        for job, vector, (category, probs), norm, its_tags in zip(jobs, vectors, categories, norms, tags,
                                                                  strict=True):
            for each in (job, *job.twins):
                self._store(each, vector, category, probs, float(norm), its_tags)
                done += 1
        self._done(done)
        self.store.commit()
        self._last_commit = time.monotonic()
        if self._publish_every_s is not None and self._last_commit - self._last_publish >= self._publish_every_s:
            self.store.finish()
            self._last_publish = time.monotonic()

    def _store(self, job: _Job, vector: np.ndarray, category: str | None,
               probs: dict[str, float] | None, norm: float | None,
               tags: list[tuple[str, float]] | None = None) -> None:
        """Store one file's row and vector, and its tags (computed here unless given)."""
        entry = job.entry
        if job.row is None:
            image_id = self.store.add(entry.path, entry.size, entry.mtime_ns, job.digest, vector, self._run,
                                      category, probs, norm)
            self.summary.added += 1
        else:
            image_id = job.row.id
            self.store.replace_content(image_id, entry.size, entry.mtime_ns, job.digest, vector, self._run,
                                       category, probs, norm)
            self.summary.updated += 1
        self._stored.append(image_id)
        if job.facts is not None:
            self.store.put_facts(job.digest, FACTS_VERSION, job.facts)
        if tags is None:
            lengths = np.array([np.nan if norm is None else norm], np.float32)
            tags = self.embedder.tagger(np.array([image_id]), vector[None], lengths, [category], [probs])[0]
        self.store.set_tags(image_id, tags)

    # -- bookkeeping ----------------------------------------------------------------
    def _skip(self, path: str, reason: str, detail: str, counted: bool = True) -> None:
        self.summary.skipped[reason] += 1
        self.on_skip(path, reason, detail)
        if counted:
            self._done(1)

    def _done(self, n: int) -> None:
        self.on_progress(n)
        if time.monotonic() - self._last_commit > self.checkpoint_seconds:
            self.store.commit()
            self._last_commit = time.monotonic()


def forget_gone(store: IndexStore, path: str) -> int:
    """Drop the image at ``path`` and every image indexed under it as a folder, if they are gone from disk;
    how many were dropped."""
    if os.path.lexists(path):
        return 0  # back again (or never gone): a change, if any, comes as one
    ids = [row.id for row in [store.row_by_path(path)] if row is not None]
    under = list(store.paths_under(path))
    ids += [row.id for row in map(store.row_by_path, under) if row is not None and not os.path.lexists(row.path)]
    for image_id in ids:
        store.remove(image_id)
    return len(ids)


def _decode_for_index(data: bytes) -> tuple[np.ndarray, bytes | None]:
    """The model's input and the content's encoded facts, from one read of the file."""
    return decode(data), facts_blob(data)


def _facts_of_file(path: str) -> bytes | None:
    try:
        return facts_blob(read_file(path).data)
    except (ImageDecodeError, OSError):
        return None  # gone or unreadable since indexing: the duplicate check decodes it, or leaves it out


def _when_of_file(item: tuple[str, int]) -> WhenWhere:
    path, mtime_ns = item
    try:
        with Image.open(path) as image:  # the header only
            found = read_when_where(image.getexif())
    except Exception:  # unreadable, or a malformed EXIF block: the file's time stands in
        found = NOWHERE
    return found.with_file_time(mtime_ns)


def estimate_work(roots: list[str], indexed: int = 0, index_dir: os.PathLike[str] | str | None = None) -> int:
    """About how many images a run over ``roots`` will embed: the image files there, less those indexed
    (names and stats only; enough to tell a job that pays for measuring the engines from one that does not)."""
    extensions = supported_extensions()
    exclude = [str(index_dir)] if index_dir is not None else []
    found = sum(1 for root in roots for item in walk_images(root, extensions, exclude)
                if isinstance(item, FileEntry))
    return max(0, found - indexed)


def count_pending(store, folders: list[str]) -> int:
    """Files under ``folders`` that are new or changed since indexed, plus indexed files now gone.

    Names and stats only, so a caller can skip loading the model when nothing changed.
    """
    extensions = supported_extensions()
    pending = 0
    for folder in folders:
        for item in walk_images(folder, extensions, [str(store.index_dir)]):
            if isinstance(item, FileEntry):
                row = store.row_by_path(item.path)
                pending += not (row and row.stat_matches(item.size, item.mtime_ns))
        # Gone files, by a stat each rather than a set of every path seen, so memory stays flat.
        pending += sum(1 for path in store.paths_under(folder) if not os.path.lexists(path))
    return pending
