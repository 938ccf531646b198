"""The half of `cbir watch` that holds the model: a child process that indexes what the watcher hands it.

The model lives in a process of its own so that an idle watcher holds none: when nothing has changed for a
while the watcher ends the child, and the memory the model took (hundreds of MB, which TensorFlow and
OpenVINO never give back to a process that keeps running) goes back to the system. The next change starts
it again. Each job takes the index's writer lock for its own length only, so a `cbir index` run by hand
between jobs is not refused; a job that finds the index busy waits for the other writer.

Messages to the child: ("paths", changed, gone), ("roots", roots), ("forget", root), or None to
stop. Answers: ("note", text) any number of times, then ("done", summary) or ("error", class name, text).
If the watcher dies (kill -9), the child finishes the job in hand (committed whole, as `cbir index`
commits) and then finds its pipe closed and ends.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import cbir.errors as errors
from cbir.actions.indexing import index_into
from cbir.errors import CbirError, WatchError
from cbir.session import adopt_head, open_store
from cbir.status import IndexStatus
from indexer.decode_budget import keep_large_allocations_apart
from indexer.embedder import Embedder
from indexer.engines.load import load_embedder
from indexer.model import resolve_model
from indexer.pipeline import IndexRun, forget_gone

# A job whose child dies is given to a new child this many times in a row before the watcher gives up.
RESTARTS = 3


class IndexWorker:
    """The parent's handle on the child: starts it on the first job, ends it on ``release``."""

    def __init__(self, index_dir: Path, model: str | None, weights: str | None, runtime: str | None,
                 note: Callable[[str], object]) -> None:
        self._args = (str(index_dir), model, weights, runtime)
        self._note = note
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def run(self, message: tuple) -> dict:
        """Hand the child one job and wait for its summary; a child that dies is replaced (RESTARTS times)."""
        for attempt in range(RESTARTS):
            if not self.alive:
                self._start()
            assert self._conn is not None
            try:
                self._conn.send(message)
                while True:
                    answer = self._conn.recv()
                    if answer[0] == "note":
                        self._note(answer[1])
                    elif answer[0] == "done":
                        return answer[1]
                    else:
                        raise _error(answer[1], answer[2])
            except (EOFError, BrokenPipeError, ConnectionResetError):
                code = self._process.exitcode if self._process is not None else None
                self._cleanup()
                self._note(f"the indexing process ended (exit code {code}); "
                           + ("starting it again" if attempt + 1 < RESTARTS else "giving up"))
        raise WatchError(f"the indexing process died {RESTARTS} times in a row on the same changes; "
                         "run `cbir index` by hand to see why")

    def release(self, timeout: float = 600.0) -> None:
        """End the child (after the job in hand, if any) and free what it held."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
        self._cleanup()

    def _start(self) -> None:
        # spawn, not fork: the watcher has threads, and a forked child would inherit their locks mid-use.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child, *self._args), name="cbir-watch-index",
                                        daemon=False)
        self._process.start()
        child.close()
        self._conn = parent

    def _cleanup(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._process = None


def _error(name: str, text: str) -> CbirError:
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, CbirError):
        return kind(text)
    return WatchError(text)


def serve(conn: Connection, index_dir: str, model: str | None, weights: str | None, runtime: str | None) -> None:
    """The child's loop: one job at a time until told to stop or the watcher is gone."""
    keep_large_allocations_apart()
    loaded: dict[str, Embedder] = {}

    def note(text: str) -> None:
        conn.send(("note", text))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            summary = _job(Path(index_dir), message, loaded, (model, weights, runtime), note)
        except CbirError as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
            continue
        except Exception as exc:  # a bug: said in one line, and the watcher decides what to do
            conn.send(("error", "WatchError", f"{type(exc).__name__}: {exc}"))
            continue
        try:
            conn.send(("done", summary))
        except (BrokenPipeError, OSError):
            return


def _job(index_dir: Path, message: tuple, loaded: dict[str, Embedder], choice: tuple, note: Callable[[str], None]
         ) -> dict:
    model, weights, runtime = choice
    kind = message[0]
    work = len(message[1]) if kind == "paths" else None
    needs_model = kind == "roots" or (kind == "paths" and bool(message[1]))

    def claim(status: IndexStatus):
        if not needs_model and status.model_id:
            return status.model_id, status.dim, status.model  # only rows leave: no model to load
        ref = resolve_model(model, status.model)
        embedder = loaded.get("embedder")
        if embedder is None or embedder.model.ref != ref.ref:
            # A watcher embeds in bursts: the bulk engine (or, before the engines are measured, Keras, as
            # `cbir index` runs a small job) is loaded once and kept while changes keep coming.
            loaded["embedder"] = embedder = load_embedder(weights, ref, runtime, bulk=True, work=work or 1)
            note(f"model loaded ({embedder.runtime})")
        return embedder.model_id, embedder.dim, ref.ref

    with open_store(index_dir, claim, wait=note) as store:
        if not needs_model:
            if kind == "forget":
                removed = store.finish_root(message[1], store.begin_run(message[1], register=False))
            else:
                removed = sum(forget_gone(store, path) for path in message[2])
            store.finish()
            return {"removed": removed, "pid": os.getpid()}
        embedder = loaded["embedder"]
        adopt_head(store, embedder)
        if kind == "paths":
            _, changed, gone = message
            summary = IndexRun(store, embedder).run_paths(changed, gone)
        elif kind == "roots":
            summary = index_into(store, embedder, message[1])  # the watcher says the summary in its own words
        else:
            raise WatchError(f"unknown job {kind!r}")
    return {**summary.as_dict(), "engine": embedder.runtime, "pid": os.getpid()}
