"""Measure a trunk's engines on this machine, once: export, check every candidate against float32 Keras,
time each, and keep the verdict (indexer.engines.profile).

Each heavy step runs in a child process (indexer.engines.steps), one engine at a time, so the memory
TensorFlow and NNCF take is given back as each ends, and an engine that crashes its library costs its
own verdict, not the run. Two cbir processes that need the same measurement take turns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cbir.errors import ModelError
from indexer.engines.files import TrunkFiles, prune_old_formats, trunk_files, trunk_key
from indexer.engines.litert_engine import litert_available
from indexer.engines.machine import describe, machine_key
from indexer.engines.openvino_engine import int8_available, openvino_available, reduced_precisions
from indexer.engines.profile import Profile, Verdict, read_profile, write_profile
from indexer.engines.table import ENGINES, KERAS, Engine, candidates
from indexer.model import ModelRef
from indexer.weights import WeightsFile

log = logging.getLogger(__name__)

STEP_TIMEOUT_S = 1800


class Measurer:
    """The measurement of one trunk's engines on this machine."""

    def __init__(self, ref: ModelRef, weights: WeightsFile | None, threads: int) -> None:
        self.ref = ref
        self.weights = weights
        self.threads = threads
        self.trunk: TrunkFiles = trunk_files(ref, trunk_key(ref, weights.digest() if weights else None))
        self.machine_key = machine_key()
        self.path = self.trunk.profile(self.machine_key)

    def read(self) -> Profile | None:
        return read_profile(self.path, self.trunk.key, self.machine_key)

    def measure(self, engines: list[str] | None = None, notify: Callable[[str], None] = log.info,
                again: bool = False) -> Profile:
        """Every candidate, checked and timed (``engines`` None), or only the engines named, checked;
        ``again`` measures even when this machine's profile is there (exports are reused)."""
        with self._turn(notify):
            profile = None if again else self.read()
            if profile is not None and (profile.complete or (engines and all(e in profile.verdicts for e in engines))):
                return profile  # another process measured it while this one waited
            return self._measure(profile, engines, notify)

    def _measure(self, previous: Profile | None, engines: list[str] | None, notify: Callable[[str], None]) -> Profile:
        started = time.monotonic()
        complete = engines is None
        names = [e.name for e in self.candidates()] if complete else list(engines or [])
        notify(f"measuring the inference engines for {self.ref.name} on this machine, once "
               f"({', '.join(names)}; about {'two minutes' if complete else 'a minute'})")
        exported = self._step("export", time_keras=complete)
        prune_old_formats(self.trunk)
        verdicts = dict(previous.verdicts) if previous is not None and not complete else {}
        if any(ENGINES[n].weights == "int8" for n in names):
            try:
                self._step("quantize")
            except ModelError as exc:
                for name in (n for n in names if ENGINES[n].weights == "int8"):
                    verdicts[name] = Verdict(name, False, error=str(exc))
        for name in names:
            if name == KERAS:  # the reference itself
                verdicts[name] = Verdict(name, True, photos=None, images_per_s=exported.get("keras_images_per_s"))
            elif name not in verdicts:
                verdicts[name] = self._check(name, timing=complete)
        if complete:
            for verdict in verdicts.values():
                if verdict.faithful and not verdict.error:
                    verdict.cold_s = self._cold(verdict.engine)
        profile = Profile(self.trunk.key, self.machine_key, exported["trunk_id"], self.ref.ref, describe(),
                          self.threads, time.time(), complete, verdicts, round(time.monotonic() - started, 1))
        profile.decide()
        write_profile(self.path, profile)
        if profile.bulk and profile.query:
            notify(f"engines measured in {profile.seconds:.0f}s: {profile.bulk.engine} for bulk work, "
                   f"{profile.query.engine} for a one-off query (`cbir engines` shows why)")
        return profile

    def candidates(self) -> list[Engine]:
        """The engines this machine can run."""

        openvino = openvino_available()
        return candidates(litert_available(), openvino, reduced_precisions() if openvino else [], int8_available())

    def _check(self, name: str, timing: bool) -> Verdict:
        try:
            (result,) = self._step("check", engines=[name], timing=timing)
        except ModelError as exc:
            return Verdict(name, False, error=str(exc))
        return Verdict(name, bool(result["faithful"]), result.get("check"), result.get("bar"), result.get("photos"),
                       result.get("images_per_s"), error=result.get("error"))

    def _cold(self, name: str) -> float | None:
        """Seconds for a new process to start ``name`` and embed one photo; the second of two runs (the first
        fills the disk cache and OpenVINO's compiled-model cache, as any earlier query would have)."""
        runs = 1 if name == KERAS else 2  # Keras takes seconds to start whatever was cached
        seconds = None
        for _ in range(runs):
            started = time.perf_counter()
            try:
                self._step("cold", engine=name)
            except ModelError:
                return None
            seconds = round(time.perf_counter() - started, 3)
        return seconds

    def _step(self, step: str, **args) -> Any:
        """Run one step in a child process and return its answer; a failure is a ModelError."""
        payload = {"model": self.ref.ref, "folder": str(self.trunk.folder), "stem": self.trunk.stem,
                   "key": self.trunk.key, "threads": self.threads, **args,
                   "weights": str(self.weights.path) if self.weights else None,
                   "weights_sha256": self.weights.sha256 if self.weights else None}
        with tempfile.TemporaryDirectory(prefix="cbir-engines-") as tmp:
            args_path, result_path = Path(tmp) / "args.json", Path(tmp) / "result.json"
            args_path.write_text(json.dumps(payload))
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            proc = subprocess.run([sys.executable, "-m", "indexer.engines.steps", step, str(args_path),
                                   str(result_path)], capture_output=True, text=True, env=env, timeout=STEP_TIMEOUT_S)
            if proc.returncode != 0 or not result_path.is_file():
                lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
                raise ModelError(f"measuring engines: the {step} step failed ({proc.returncode}): "
                                 + (lines[-1][:300] if lines else "no message"))
            return json.loads(result_path.read_text())

    @contextlib.contextmanager
    def _turn(self, notify: Callable[[str], None]) -> Iterator[None]:
        """Hold the measurement's lock file; wait for another process that holds it."""
        try:
            import fcntl
        except ImportError:  # no advisory locks here: measure without taking turns
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                notify("waiting for another cbir process that is measuring the engines")
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
