"""`cbir watch` and `cbir serve --watch`: the index keeps itself current as files change.

First it catches up with what changed while nothing was watching (the stat check of `cbir index`: only new
and changed files are read), then it waits for the operating system to say that something changed
(cbir.watching.events). A changed path waits until it stops changing (cbir.watching.settle); whatever has
settled by then goes to the indexing process in one job (cbir.actions.watch_worker), so a phone syncing
2,000 photos is indexed in large batches at the pipeline's speed while a single new photo is indexed on
its own within seconds. Each job publishes a new generation of the search index, which a running server
picks up on its next search. The model is loaded with the first change and released when nothing has
changed for ``release_after_s``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from cbir.actions.indexing import known_roots
from cbir.actions.progress import QUIET, Progress
from cbir.actions.watch_worker import IndexWorker
from cbir.errors import UsageError
from cbir.text import quote_path
from cbir.watching.events import Event, FolderEvents, check_room
from cbir.watching.roots import Roots
from cbir.watching.settle import Settler
from cbir.watching.state import clear_state, write_state
from index_store.catalog import CatalogReader, ImageRow, catalog_exists
from indexer.loader import is_candidate, supported_extensions
from indexer.pipeline import count_pending
from indexer.walker import FileEntry, walk_images

# While a folder is away, how often the watcher looks whether it is back, besides when the mount table
# changes (a folder deleted and made again raises no mount event).
AWAY_CHECK_S = 30.0


def watch(index_dir: Path, folders: list[str], *, model: str | None = None, weights: str | None = None,
          runtime: str | None = None, settle_s: float = 1.0, release_after_s: float = 120.0,
          forget_after_s: float | None = None, progress: Progress = QUIET,
          on_batch: Callable[[dict], object] = lambda summary: None,
          stop: threading.Event | None = None) -> dict:
    """Watch ``folders`` (none: every folder indexed before) and keep the index at ``index_dir`` current until
    ``stop`` is set (or Ctrl-C). Each job's summary goes to ``on_batch``; the totals are returned.

    A folder that goes away (an unmounted drive) keeps its photos in the index and is watched again when it
    comes back; with ``forget_after_s``, its photos leave the index once it has been away that long.
    """
    roots = [os.path.abspath(f) for f in folders] or _known_roots(index_dir)
    for folder in roots:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UsageError(f"{folder} is not a folder")
    job = _Watch(index_dir, roots, IndexWorker(index_dir, model, weights, runtime, progress.note), settle_s,
                 release_after_s, forget_after_s, progress, on_batch)
    if stop is not None:
        # Wakes the watcher out of its wait when told to stop: a thread blocked on the event, not a loop.
        def wake() -> None:
            stop.wait()
            job.events.queue.put(Event("stop"))

        threading.Thread(target=wake, name="cbir-watch-stop", daemon=True).start()
    try:
        job.run()
    finally:
        job.close()
    return job.totals_dict()


def _known_roots(index_dir: Path) -> list[str]:
    if not catalog_exists(index_dir):
        raise UsageError(f"no folders given and no index at {index_dir} yet: name the folders to watch")
    try:
        return known_roots(index_dir)
    except UsageError:
        with CatalogReader.open(index_dir) as reader:
            roots = reader.roots()
        if not roots:
            raise
        return roots  # a folder that is not there now is away: watched for when it comes back


class _Watch:
    def __init__(self, index_dir: Path, roots: list[str], worker: IndexWorker, settle_s: float,
                 release_after_s: float, forget_after_s: float | None, progress: Progress,
                 on_batch: Callable[[dict], object]) -> None:
        self.index_dir = index_dir
        self.worker = worker
        self.progress = progress
        self.on_batch = on_batch
        self.release_after_s = release_after_s
        self.forget_after_s = forget_after_s
        self.roots = Roots(roots)
        check_room(self.roots.present)
        self.events = FolderEvents(ignore=[str(index_dir)])
        self.settler = Settler(settle_s)
        self.extensions = supported_extensions()
        self.totals: Counter = Counter()
        self.forgotten: set[str] = set()
        self.last_work = time.monotonic()
        self.last_away_check = time.monotonic()
        self.since = time.time()

    def totals_dict(self) -> dict:
        return dict(self.totals)

    def close(self) -> None:
        self.events.close()
        self.worker.release()
        clear_state(self.index_dir)

    def _say_state(self) -> None:
        write_state(self.index_dir, self.roots.present, self.roots.away, self.since)

    def run(self) -> None:
        for folder in self.roots.away:
            self._say_away(folder)
        # Watch first, then catch up: a change made during the catch-up is caught either way.
        self.events.watch(self.roots.present)
        self._catch_up(self.roots.present)
        self._say_state()
        self.progress.note(f"watching {', '.join(map(quote_path, self.roots.present)) or 'nothing yet'}"
                           + ("; Ctrl-C stops" if threading.current_thread() is threading.main_thread() else ""))
        while True:
            try:
                first = self.events.queue.get(timeout=self._timeout())
            except queue.Empty:
                first = None
            for event in self._drain(first):
                if event.kind == "stop":
                    return
                if event.kind == "error":
                    assert event.error is not None
                    raise event.error
                if event.kind == "mounts":
                    self._check_roots()
                else:
                    self._touch(event.path, event.change)
            self._index_ready()
            self._housekeeping()

    def _drain(self, first: Event | None) -> list[Event]:
        found = [] if first is None else [first]
        while True:
            try:
                found.append(self.events.queue.get_nowait())
            except queue.Empty:
                return found

    def _timeout(self) -> float | None:
        """Until the next thing the watcher must do by itself; None: nothing, sleep until an event."""
        now = time.monotonic()
        due = [self.settler.next_due()]
        if self.worker.alive:
            due.append(max(0.0, self.last_work + self.release_after_s - now))
        if self.roots.away:
            due.append(max(0.0, self.last_away_check + AWAY_CHECK_S - now))
            if self.forget_after_s is not None:
                due += [max(0.0, since + self.forget_after_s - time.time())
                        for folder, since in self.roots.away_since.items() if folder not in self.forgotten]
        waits = [d for d in due if d is not None]
        return min(waits) if waits else None

    def _touch(self, path: str, change: str = "added") -> None:
        if path in self.roots.folders and not os.path.isdir(path):
            self._check_roots()  # a watched folder itself went away
            return
        if os.path.isdir(path):
            if change != "added":
                return  # a folder's own times or mode changed: its files say what changes in them
            # A folder moved or copied in: its files may predate the watch on it, so each is looked at.
            for item in walk_images(path, self.extensions, [str(self.index_dir)]):  # as IndexRun walks
                if isinstance(item, FileEntry):
                    self.settler.touch(item.path)
            return
        if os.path.exists(path) and not is_candidate(path, self.extensions):
            return
        self.settler.touch(path)

    def _index_ready(self) -> None:
        ready = self.settler.take_ready()
        if not ready:
            return
        changed, gone = self._needing_work(ready.changed, ready.gone)
        if not changed and not gone:
            return
        self._job(("paths", changed, gone), len(changed) + len(gone))

    def _needing_work(self, changed: list[str], gone: list[str]) -> tuple[list[str], list[str]]:
        """The changed paths the index does not hold as they are now (a photo only touched, or walked again
        with its folder, is left out), and the gone ones it holds an image at or under: so that the indexing
        process, and the model, start only for real work."""
        if not catalog_exists(self.index_dir):
            return changed, []
        with CatalogReader.open(self.index_dir) as reader:
            return ([p for p in changed if not _indexed_as_is(reader.row_by_path(p))],
                    [p for p in gone if reader.row_by_path(p) is not None or next(reader.paths_under(p), None)])

    def _job(self, message: tuple, paths: int) -> dict:
        started = time.monotonic()
        summary = self.worker.run(message)
        self.last_work = time.monotonic()
        summary = {"job": message[0], "paths": paths, **summary, "seconds": round(self.last_work - started, 3),
                   "at": round(time.time(), 3)}
        for key in ("added", "updated", "renamed", "removed"):
            self.totals[key] += summary.get(key, 0)
        self.totals["skipped"] += sum(summary.get("skipped", {}).values())
        self.totals["jobs"] += 1
        self.on_batch(summary)
        return summary

    def _catch_up(self, folders: list[str]) -> None:
        """Index what changed in ``folders`` while nothing watched them (stat check, as `cbir index`)."""
        wanted = [f for f in folders if self._pending(f)]
        if wanted:
            self.progress.note(f"catching up with {', '.join(map(quote_path, wanted))}")
            self._job(("roots", wanted), 0)

    def _pending(self, folder: str) -> bool:
        if not catalog_exists(self.index_dir):
            return True
        with CatalogReader.open(self.index_dir) as reader:
            return count_pending(reader, [folder]) > 0 or folder not in reader.roots()

    def _check_roots(self) -> None:
        self.last_away_check = time.monotonic()
        changes = self.roots.check()
        for folder in changes.gone:
            self._say_away(folder)
        for folder in changes.back:
            self.forgotten.discard(folder)
            self.progress.note(f"{quote_path(folder)} is back: watching it again")
        if changes.gone or changes.back:
            self.events.watch(self.roots.present)
            self._say_state()
        if changes.back:
            self._catch_up(changes.back)

    def _say_away(self, folder: str) -> None:
        after = (f"they leave it after {_duration(self.forget_after_s)} away" if self.forget_after_s is not None
                 else "they stay until it comes back (--forget-after changes that)")
        self.progress.note(f"{quote_path(folder)} is not there (unplugged or unmounted?); its photos stay in the "
                           f"index, {after}; watching for it to come back")

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.roots.away and now - self.last_away_check >= AWAY_CHECK_S:
            self._check_roots()
        if self.forget_after_s is not None:
            for folder in self.roots.away_longer_than(self.forget_after_s):
                if folder not in self.forgotten:
                    self.forgotten.add(folder)
                    summary = self._job(("forget", folder), 0)
                    self.progress.note(f"{quote_path(folder)} has been away {_duration(self.forget_after_s)}: "
                                       f"{summary.get('removed', 0)} photos left the index")
        if self.worker.alive and not len(self.settler) and now - self.last_work >= self.release_after_s:
            self.worker.release()
            self.progress.note(f"nothing changed for {_duration(self.release_after_s)}: model released")


def _indexed_as_is(row: ImageRow | None) -> bool:
    return row is not None and row.on_disk_as_indexed()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "ever"
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} s"
