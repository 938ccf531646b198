"""Work that takes a while (moving many files, checking for duplicates), run beside the requests.

Jobs that move files run on one worker thread, so the server's moves happen one at a time, as a single
writer's do; jobs that only read (a duplicates scan) run on a lane of their own, so a long scan never
delays a clean or an undo. Each lane holds a few jobs at most: one more is refused (HTTP 429) rather than
queued without end. A job's page polls ``/api/jobs/ID`` for progress.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cbir.errors import CbirError

log = logging.getLogger(__name__)

_KEPT = 200  # finished jobs remembered


class NoSuchJob(CbirError):
    """A job id the server does not know (HTTP 404)."""


class TooManyJobs(CbirError):
    """A lane already holds as many jobs as it takes (HTTP 429)."""


# Jobs a lane holds at most, running and waiting.
LANE_LIMIT = 4


@dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    result: dict | list | None = None
    found: list = field(default_factory=list)  # results final before the job ends (a scan's groups so far)
    error: dict | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def advance(self, n: int = 1) -> None:
        self.done += n

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "found": len(self.found), "result": self.result, "error": self.error,
                "started_at": self.started_at, "finished_at": self.finished_at}


def error_body(exc: BaseException) -> dict:
    """How the web API describes an error: its type, cbir's exit code for it, one line of message."""
    if isinstance(exc, CbirError):
        return {"type": type(exc).__name__, "code": exc.exit_code, "message": " ".join(str(exc).split())}
    return {"type": "InternalError", "code": 1,
            "message": f"unexpected {type(exc).__name__} (a bug in cbir; the server log has the details)"}


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._lanes = {"moves": ThreadPoolExecutor(1, thread_name_prefix="cbir-job"),
                       "reads": ThreadPoolExecutor(1, thread_name_prefix="cbir-scan")}
        self._lane_of: dict[str, str] = {}

    def start(self, kind: str, work: Callable[[Job], dict | list], *, reads_only: bool = False) -> Job:
        """Queue ``work`` on its lane (``reads_only``: the lane that never delays moves); TooManyJobs when full."""
        lane = "reads" if reads_only else "moves"
        job = Job(secrets.token_hex(8), kind)
        with self._lock:
            waiting = [j for j in self._jobs.values() if j.finished_at is None and self._lane_of.get(j.id) == lane]
            if len(waiting) >= LANE_LIMIT:
                raise TooManyJobs(f"{len(waiting)} jobs of this kind are already running or waiting; try again "
                                  "when one has finished")
            self._jobs[job.id] = job
            self._lane_of[job.id] = lane
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            for old in sorted(finished, key=lambda j: j.finished_at or 0)[:-_KEPT]:
                del self._jobs[old.id]
                self._lane_of.pop(old.id, None)
        self._lanes[lane].submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], dict | list]) -> None:
        job.state = "running"
        try:
            job.result = work(job)
            job.state = "done"
        except Exception as exc:
            if not isinstance(exc, CbirError):
                log.exception("job %s (%s) failed", job.id, job.kind)
            job.error = error_body(exc)
            job.state = "failed"
        finally:
            job.finished_at = time.time()

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NoSuchJob(f"no job {job_id!r} (jobs are forgotten when the server restarts)")
        return job

    def close(self) -> None:
        """Wait for the running jobs; forget queued ones (nothing of theirs has started)."""
        for lane in self._lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)
