"""The state of one `cbir serve`: the index, the warm model and search index, thumbnails, the jobs, the guard;
and the jobs it starts (clean, undo, scanning and moving duplicates), each through cbir.actions.

Every action that moves files opens the index as its single writer (cbir.moves.session), so a server
action and a `cbir index` run never write at once: the later one hears "busy".
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from cbir import __version__
from cbir.actions import clean as cleaning
from cbir.actions import duplicates as dups
from cbir.actions import selection
from cbir.actions import undo as undoing
from cbir.actions.clean import CleanRequest
from cbir.actions.progress import Progress
from cbir.errors import CbirError, UsageError
from cbir.warm import Warm
from cbir.web.jobs import Job, Jobs
from cbir.web.library import Library
from cbir.web.security import Guard
from cbir.web.thumbnails import Thumbnails

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_UPLOAD_PIXELS = 100_000_000  # a 100-megapixel picture; anything larger is not a photo to search with
UPLOAD_THREADS = 2  # uploads decoded at once; the others wait without holding a request thread
FILE_THREADS = 8  # requests reading the user's files (thumbnails, originals) at once, likewise


class ServerReadOnly(CbirError):
    """An action that moves files, asked of a server started with --read-only (HTTP 403)."""


class Forbidden(CbirError):
    """A request from another site, or without the form token (HTTP 403)."""


class TooLarge(CbirError):
    """A request body over the upload limit (HTTP 413)."""


@dataclass
class Server:
    """Everything a request handler needs, made once per server."""

    library: Library
    guard: Guard
    warm: Warm = field(default_factory=lambda: Warm(bulk=True, work=1))
    read_only: bool = False
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    thumbnails: Thumbnails = field(init=False)
    jobs: Jobs = field(default_factory=Jobs)
    moved_groups: dict[str, dict[int, int | None]] = field(default_factory=dict)  # scan job -> group -> run
    uploads: RecentUploads = field(default_factory=lambda: RecentUploads())
    _upload_limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)
    _file_limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.thumbnails = Thumbnails(self.library.index_dir)

    def upload_limiter(self) -> anyio.CapacityLimiter:
        """The threads uploads are decoded on (made in the server's event loop, on first use)."""
        if self._upload_limiter is None:
            self._upload_limiter = anyio.CapacityLimiter(UPLOAD_THREADS)
        return self._upload_limiter

    def file_limiter(self) -> anyio.CapacityLimiter:
        """The threads requests that read the user's files run on (made on first use)."""
        if self._file_limiter is None:
            self._file_limiter = anyio.CapacityLimiter(FILE_THREADS)
        return self._file_limiter

    @classmethod
    def start(cls, index_dir: Path, guard: Guard, *, model: str | None = None, weights: str | None = None,
              runtime: str | None = None, read_only: bool = False, max_upload_bytes: int = MAX_UPLOAD_BYTES
              ) -> Server:
        """A server whose model and search index are loaded before the first request (when there is an index),
        and whose missing thumbnails are being made in the background."""
        # One picture at a time: measuring the engines is left to a job that pays for it.
        server = cls(Library(index_dir), guard, Warm(model=model, weights=weights, runtime=runtime, bulk=True,
                                                     work=1), read_only=read_only, max_upload_bytes=max_upload_bytes)
        server.library.warm(server.warm)
        server.make_thumbnails_in_background()
        return server

    @property
    def index_dir(self) -> Path:
        return self.library.index_dir

    @property
    def runtime(self) -> str | None:
        embedder = self.warm.loaded_embedder
        return embedder.runtime if embedder is not None else None

    def writable(self) -> None:
        if self.read_only:
            raise ServerReadOnly("this server was started with --read-only: it does not move files")

    def act(self, csrf: str | None) -> Server:
        """This server, for an action that moves files: refused when read-only or without the form token."""
        self.writable()
        self.check_csrf(csrf)
        return self

    def check_csrf(self, offered: str | None) -> None:
        if not self.guard.csrf_ok(offered):
            raise Forbidden("missing or wrong form token: reload the page (programs: send the csrf_token of "
                            "GET /api/session as the X-CSRF-Token header)")

    def session_info(self) -> dict:
        return {"version": __version__, "index": str(self.index_dir), "read_only": self.read_only,
                "csrf_token": self.guard.csrf, "max_upload_bytes": self.max_upload_bytes,
                "max_upload_pixels": self.max_upload_pixels}

    def make_thumbnails_in_background(self) -> None:
        def rows():
            try:
                with self.library.reader() as reader:
                    return list(reader.rows_page(None, None, 0, 1 << 62)[1])
            except CbirError:
                return []

        self.thumbnails.make_missing(rows, lambda row, exc: log.info("no thumbnail for %s: %s", row.path, exc))

    # -- jobs: the CLI's own use cases, on the server's worker ----------------------------------------------------
    def start_clean(self, categories: list[str], min_confidence: float, chosen: set[int] | None) -> Job:
        request = CleanRequest(list(categories), min_confidence=min_confidence)
        return self.jobs.start("clean", lambda job: cleaning.clean(self.index_dir, request, chosen=chosen,
                                                                   progress=_progress_of(job)))

    def start_undo(self, run_id: int | None) -> Job:
        return self.jobs.start("undo", lambda job: undoing.undo(self.index_dir, run_id, progress=_progress_of(job)))

    def start_selection_move(self, image_ids: list[int], folder: str) -> Job:
        """Move the pictures a person selected into ``folder`` (a category's, or 'duplicates'), journaled."""
        selection.move_selected(self.index_dir, image_ids, folder)  # refused at once when it cannot be done
        return self.jobs.start("move", lambda job: selection.move_selected(
            self.index_dir, image_ids, folder, apply=True, progress=_progress_of(job)))

    def start_duplicates_scan(self, level: str) -> Job:
        """A scan whose groups show up in the job's ``found`` as soon as each is final."""
        return self.jobs.start("duplicates", lambda job: dups.duplicates(self.index_dir, level,
                                                                          progress=_progress_of(job),
                                                                          on_group=job.found.append),
                               reads_only=True)

    def scan_groups(self, job_id: str) -> tuple[Job, list[dict]]:
        """A duplicates scan job and the groups it has found so far (all of them once it is done)."""
        job = self.jobs.get(job_id)
        if job.kind != "duplicates":
            raise UsageError(f"job {job_id} is not a duplicates scan")
        groups = job.result["groups"] if isinstance(job.result, dict) else list(job.found)
        return job, groups

    def start_duplicates_move(self, scan_job: str, chosen: dict[int, int | None]) -> Job:
        """Move the copies of the groups a person chose from the scan ``scan_job`` (number -> id to keep)."""
        if not chosen:
            raise UsageError("choose at least one group whose copies should move")
        _, groups = self.scan_groups(scan_job)
        dups.chosen_copies(groups, chosen)  # a group or keeper the scan did not find: refused at once (HTTP 400)

        def move(job: Job) -> dict:
            report = dups.move_chosen_copies(self.index_dir, groups, chosen, apply=True, progress=_progress_of(job))
            self.moved_groups.setdefault(scan_job, {}).update(dict.fromkeys(chosen, report["run_id"]))
            return report

        return self.jobs.start("duplicates-move", move)

    def close(self) -> None:
        self.thumbnails.close()
        self.jobs.close()


class RecentUploads:
    """The last pictures searched by upload, so that each such search has a URL to reload or bookmark. They
    live in memory only (a restart forgets them) and the oldest go first beyond ``count`` or ``max_bytes``."""

    def __init__(self, count: int = 32, max_bytes: int = 256 << 20) -> None:
        self.count, self.max_bytes = count, max_bytes
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, data: bytes) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._kept[token] = data
            while len(self._kept) > self.count or sum(map(len, self._kept.values())) > self.max_bytes:
                self._kept.popitem(last=False)
        return token

    def get(self, token: str) -> bytes | None:
        with self._lock:
            return self._kept.get(token)


def _progress_of(job: Job) -> Progress:
    """A job's progress as its page polls it: the total of the phase that is running, and the steps done."""
    def phase(name: str, total: int | None) -> None:
        job.done, job.total = 0, total or 0

    return Progress(phase=phase, advance=job.advance)
