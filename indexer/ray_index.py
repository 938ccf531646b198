"""Indexing on a Ray cluster: the single writer walks and commits, Ray actors read, decode and embed.

The driver (this process, holding the index's writer lock) walks the folders and
settles every file it can by name and stat alone, exactly as a local run does.
The paths that need reading go to a pool of Ray actors in chunks; each actor has
loaded the same model on the same engine once, reads, hashes and decodes its
chunk on threads and embeds it, and sends back hashes, unit vectors, feature
lengths and category probabilities (the head is the driver's, checked at start).
The driver then decides each file as a local run does (touched but unchanged, a
rename, a copy, or new content), computes the tags from the vectors, and
commits each chunk whole. A crash of the
driver loses at most the chunks not yet committed; a rerun resumes from there.
A killed actor is restarted by Ray and its chunks retried, so no file is lost
or stored twice.

Files must be readable by the workers at the paths the driver sees (a shared
filesystem). Actors are plain Ray actors rather than Ray Data: each chunk goes
back to the one writer in order of completion, and nothing else is needed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cbir.config import cache_dir
from cbir.errors import ClusterError
from indexer.decode_budget import keep_large_allocations_apart
from indexer.engines.load import load_embedder
from indexer.engines.machine import inference_threads
from indexer.image_facts import facts_blob
from indexer.loader import load_many
from indexer.pipeline import IndexRun, _Job

log = logging.getLogger(__name__)

# CPUs each actor asks Ray for: its model and decoding threads share them.
WORKER_CPUS = 2
# Images per task: as a local run's batch, and small enough that a lost task costs little.
CHUNK = 32
# Tasks queued on each actor, so it starts the next chunk without waiting for the driver.
TASKS_PER_WORKER = 2
# Settings that decide which model and engine a worker loads, passed on to the workers.
FORWARDED_SETTINGS = ("CBIR_CACHE", "CBIR_WEIGHTS", "CBIR_RUNTIME", "CBIR_THREADS", "CBIR_HOME")


@dataclass(frozen=True)
class EngineSpec:
    """What every worker loads: the driver's model, weights and engine choice."""

    model: str
    weights: str | None
    runtime: str | None
    threads: int
    settings: dict[str, str] = field(default_factory=dict)


class EmbedWorker:
    """One Ray actor: loads the engine once, then reads, decodes and embeds chunks of paths.

    Two chunks run at once in the actor's threads, one decoding while the other holds the model.
    """

    def __init__(self, spec: EngineSpec) -> None:
        for name, value in spec.settings.items():
            os.environ.setdefault(name, value)
        keep_large_allocations_apart()

        self.embedder = load_embedder(spec.weights, spec.model, spec.runtime, spec.threads, bulk=True)
        self.threads = spec.threads
        self._model_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.embedder.model_id, "runtime": self.embedder.runtime, "pid": os.getpid(),
                "node": socket.gethostname()}

    def embed(self, paths: list[str]) -> dict[str, Any]:

        loaded = list(load_many(paths, workers=self.threads, facts=facts_blob))
        pixels = [item.pixels for item in loaded if item.pixels is not None]
        with self._model_lock:
            result = self.embedder.embed(np.stack(pixels) if pixels else np.zeros((0, 0, 0, 3), np.uint8))
        return {"paths": paths, "digests": [item.digest for item in loaded], "facts": [i.facts for i in loaded],
                "problems": [None if item.reason is None else (item.reason, item.detail) for item in loaded],
                "vectors": result.vectors, "category_probs": result.category_probs, "norms": result.norms}


@dataclass
class _Task:
    worker: int
    jobs: list[_Job]


class Pool(Protocol):
    """Workers that embed chunks of paths: Ray actors (``RayPool``), or, in tests, workers in this process."""

    size: int

    def submit(self, worker: int, paths: list[str]) -> Hashable:
        """Start embedding ``paths`` on ``worker``; a handle for the answer."""

    def wait_one(self, pending: list[Hashable]) -> tuple[Hashable, dict[str, Any]]:
        """The first of ``pending`` to finish, and its answer (what ``EmbedWorker.embed`` returns)."""


class RayPool:
    """Ray actors running ``EmbedWorker``."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors
        self.size = len(actors)

    def submit(self, worker: int, paths: list[str]) -> Hashable:
        return self.actors[worker].embed.remote(paths)

    def wait_one(self, pending: list[Hashable]) -> tuple[Hashable, dict[str, Any]]:
        ray = _import_ray()
        ready, _ = ray.wait(pending, num_returns=1)
        return ready[0], ray.get(ready[0])


class RayIndexRun(IndexRun):
    """``cbir index --ray``: an IndexRun whose embedding is done by Ray actors (or any ``pool`` given)."""

    def __init__(self, store, embedder, spec: EngineSpec, address: str | None = None, *,
                 actor_count: int | None = None, pool: Pool | None = None, **kwargs: Any) -> None:
        super().__init__(store, embedder, **kwargs)
        self.spec = spec
        self.address = address
        self.actor_count = actor_count  # default: one per WORKER_CPUS of the cluster
        self.workers_info: list[dict[str, Any]] = []
        self.startup_seconds = 0.0  # joining or starting Ray, and every actor loading the engine
        self._actors: list[Any] = []
        self._given_pool = pool
        self._pool_of_workers: Pool | None = pool
        self._tasks: dict[Any, _Task] = {}

    @contextmanager
    def _resources(self) -> Iterator[None]:
        if self._given_pool is not None:
            yield
            return
        ray = _import_ray()
        started = time.monotonic()
        started_here = connect(self.address, self.spec.settings)
        try:
            self._start_actors(ray)
            self._pool_of_workers = RayPool(self._actors)
            self.startup_seconds = time.monotonic() - started
            log.info("%d Ray workers ready on %d nodes in %.1fs", len(self._actors),
                     len({info["node"] for info in self.workers_info}), self.startup_seconds)
            yield
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"the Ray cluster failed: {_first_line(exc)}; what was committed is kept, "
                               "run again to resume") from exc
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors, self._tasks = [], {}
            if started_here:
                ray.shutdown()

    def _start_actors(self, ray) -> None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = self.actor_count or max(1, cpus // WORKER_CPUS)
        remote = ray.remote(num_cpus=min(WORKER_CPUS, cpus), max_restarts=3, max_task_retries=3,
                            max_concurrency=2)(EmbedWorker)
        self._actors = [remote.remote(self.spec) for _ in range(count)]
        self.workers_info = ray.get([actor.describe.remote() for actor in self._actors])
        for info in self.workers_info:
            if (info["model_id"], info["runtime"]) != (self.embedder.model_id, self.embedder.runtime):
                raise ClusterError(
                    f"a Ray worker on {info['node']} loaded {info['model_id']} on {info['runtime']}, not "
                    f"{self.embedder.model_id} on {self.embedder.runtime} as here: install the same cbir, "
                    "model and engines on every node")

    def worker_pids(self) -> list[int]:
        """Process ids of the actors as they are now (a restarted actor has a new one)."""
        ray = _import_ray()
        return [info["pid"] for info in ray.get([actor.describe.remote() for actor in self._actors])]

    def _index_root(self, root: str, register: bool = True) -> None:
        run = self.store.begin_run(root, register)
        self._run = run
        chunk: list[_Job] = []
        for job in self._files_to_read(self._walk(root), run):
            chunk.append(job)
            if len(chunk) == CHUNK:
                self._submit(chunk)
                chunk = []
        if chunk:
            self._submit(chunk)
        while self._tasks:
            self._collect()
        self.summary.removed += self.store.finish_root(root, run)

    @property
    def _workers(self) -> Pool:
        assert self._pool_of_workers is not None, "workers are started by run()"
        return self._pool_of_workers

    def _submit(self, jobs: list[_Job]) -> None:
        while len(self._tasks) >= TASKS_PER_WORKER * self._workers.size:
            self._collect()
        busy = [0] * self._workers.size
        for task in self._tasks.values():
            busy[task.worker] += 1
        worker = busy.index(min(busy))
        ref = self._workers.submit(worker, [job.entry.path for job in jobs])
        self._tasks[ref] = _Task(worker, jobs)

    def _collect(self) -> None:
        """Wait for one chunk, then decide and store its files as a local run would."""
        ref, result = self._workers.wait_one(list(self._tasks))
        task = self._tasks.pop(ref)
        embedded: list[_Job] = []  # in the order of the returned vectors
        facts = result.get("facts") or [None] * len(task.jobs)  # a worker of an older cbir: filled in at the end
        for job, digest, problem, blob in zip(task.jobs, result["digests"], result["problems"], facts, strict=True):
            if problem is not None:
                self._skip(job.entry.path, *problem)
                continue
            job.digest, job.facts = digest, blob
            embedded.append(job)
        keep = [k for k, job in enumerate(embedded) if not (self._unchanged(job) or self._relinked(job))]
        if keep:
            # The workers' categories: the same head (checked at start), and work the single writer is spared.
            probs = result["category_probs"]
            self._store_embedded([embedded[k] for k in keep], result["vectors"][keep],
                                 None if probs is None else probs[keep], result["norms"][keep])
        else:
            self.store.commit()


def connect(address: str | None, settings: dict[str, str]) -> bool:
    """Join the Ray cluster at ``address`` (or start a local instance when None); True when started here."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.ERROR,
                               "runtime_env": {"env_vars": dict(settings)}}
    if address is not None and address != "auto":
        _check_reachable(address)
    try:
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 1, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray instance" if address is None else f"reach the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {_first_line(exc)}") from exc
    return True


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on an address nothing listens at (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"a Ray address is HOST:PORT, ray://HOST:PORT or auto, not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def engine_spec(embedder, runtime: str | None, threads: int | None) -> EngineSpec:
    """The spec that makes workers load what ``embedder`` is: same model, weights file and engine. The engine is
    named, not left to 'auto', so every worker runs the driver's (checked for fidelity on the worker's CPU)."""

    weights = getattr(embedder, "weights", None)
    settings = {name: os.environ[name] for name in FORWARDED_SETTINGS if os.environ.get(name)}
    settings.setdefault("CBIR_CACHE", str(cache_dir()))
    return EngineSpec(model=embedder.model.ref, weights=str(weights.path) if weights is not None else None,
                      runtime=embedder.runtime or runtime, threads=min(WORKER_CPUS, inference_threads(threads)),
                      settings=settings)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'cbir[ray]'") from None
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
