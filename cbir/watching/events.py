"""What the operating system says changed: file events under the watched folders, and mount-table changes.

File events come from watchfiles (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows)
on a thread of their own; the mount table (Linux) is watched with poll(), which wakes when anything is
mounted or unmounted, because unmounting a drive raises no file event. Both feed one queue, so the watcher
sleeps until something happens: no loop looks at the disk while nothing changes.
"""

from __future__ import annotations

import os
import queue
import select
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import watchfiles

from cbir.errors import WatchLimitError

# How long watchfiles gathers events before handing them on, and how often its loop looks for them (ms).
# The watcher waits for files to settle on its own (cbir.watching.settle), so these only bound the delay.
DEBOUNCE_MS = 100
STEP_MS = 50
# How often watchfiles' thread checks whether it should stop (ms): the only wake-up while nothing changes.
STOP_CHECK_MS = 2000


@dataclass(frozen=True)
class Event:
    """``kind``: "changed" (a path was added, modified, renamed or deleted: look at it), "mounts" (the mount
    table changed), or "error" (the file watch failed; ``error`` says why)."""

    kind: str
    path: str = ""
    change: str = ""  # for "changed": added, modified or deleted, as the system said
    error: Exception | None = None


class FolderEvents:
    """File events under some folders, and mount-table changes, into ``self.queue``."""

    def __init__(self, ignore: Iterable[str] = ()) -> None:
        self.queue: queue.Queue[Event] = queue.Queue()
        self._ignore = [os.path.realpath(p) + os.sep for p in ignore]
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._folders: list[str] = []
        self._mounts_stop = threading.Event()
        threading.Thread(target=self._watch_mounts, name="cbir-watch-mounts", daemon=True).start()

    @property
    def folders(self) -> list[str]:
        return list(self._folders)

    def watch(self, folders: list[str]) -> None:
        """Watch exactly ``folders`` from now on (nothing, when empty)."""
        if sorted(folders) == sorted(self._folders) and self._thread is not None and self._thread.is_alive():
            return
        self._stop_files()
        self._folders = list(folders)
        if folders:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._watch_files, args=(list(folders), self._stop),
                                            name="cbir-watch-files", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop_files()
        self._mounts_stop.set()

    def _stop_files(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_CHECK_MS / 1000 + 2)
        self._stop = self._thread = None

    def _watch_files(self, folders: list[str], stop: threading.Event) -> None:
        try:
            for changes in watchfiles.watch(*folders, watch_filter=self._wanted, debounce=DEBOUNCE_MS, step=STEP_MS,
                                            stop_event=stop, rust_timeout=STOP_CHECK_MS, raise_interrupt=False,
                                            ignore_permission_denied=True):
                for change, path in changes:
                    self.queue.put(Event("changed", path, change.name))
        except Exception as exc:  # the watch could not start or broke: the watcher says why and stops
            if not stop.is_set():
                self.queue.put(Event("error", error=_typed(exc, folders)))

    def _wanted(self, _change: object, path: str) -> bool:
        if os.path.basename(path).startswith("."):
            return False  # hidden files and folders are never indexed (indexer.walker), nor the partial
            # downloads browsers and sync tools keep under a dot name until they rename them
        return not any((path + os.sep).startswith(p) for p in self._ignore)

    def _watch_mounts(self) -> None:
        try:
            table = open("/proc/self/mountinfo", "rb")  # held open for the thread's life
        except OSError:
            return  # not Linux: a drive that goes away is noticed when its folder is gone
        with table:
            poller = select.poll()
            poller.register(table, select.POLLPRI | select.POLLERR)
            table.read()
            while not self._mounts_stop.is_set():
                if poller.poll(STOP_CHECK_MS):
                    table.seek(0)
                    table.read()
                    self.queue.put(Event("mounts"))


def _typed(exc: Exception, folders: list[str]) -> Exception:
    text = str(exc)
    if "watch limit" in text.lower() or "MaxFilesWatch" in text or "No space left on device" in text:
        return WatchLimitError(limit_message(folders))
    return exc


def inotify_limit() -> int | None:
    """The most inotify watches one user may hold (Linux), or None where there is no such limit."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def folders_under(roots: list[str]) -> int:
    """How many folders a recursive watch of ``roots`` needs (one inotify watch each), hidden ones aside."""
    count = 0
    stack = [r for r in roots if os.path.isdir(r)]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            count += 1
            with os.scandir(folder) as entries:
                stack.extend(e.path for e in entries if not e.name.startswith(".") and _is_dir(e))
        except OSError:
            continue
    return count


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def check_room(roots: list[str], limit: int | None = None, needed: int | None = None) -> None:
    """WatchLimitError, with how to raise the limit, when the folders need more inotify watches than a user
    may hold (other programs' watches count against the same limit, so this is the least that is needed)."""
    limit = inotify_limit() if limit is None else limit
    if limit is None:
        return
    needed = folders_under(roots) if needed is None else needed
    if needed > limit:
        raise WatchLimitError(limit_message(roots, needed, limit))


def limit_message(roots: list[str], needed: int | None = None, limit: int | None = None) -> str:
    limit = inotify_limit() if limit is None else limit
    needs = f"{needed} folders to watch, " if needed is not None else ""
    return (f"cannot watch {', '.join(roots)}: {needs}more than this system's limit on inotify watches per user "
            f"({limit}, shared with every other program that watches files); raise it with `sudo sysctl "
            "fs.inotify.max_user_watches=524288` (and keep it with a line `fs.inotify.max_user_watches=524288` in "
            "/etc/sysctl.d/90-cbir.conf), or watch fewer folders")
