"""`cbir status` and `cbir engines`: the index as it is, and the engines that run the model on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from cbir.status import index_status
from index_store.check import full as full_check
from indexer.engines.machine import describe, inference_threads
from indexer.engines.measure import Measurer
from indexer.model import resolve_model
from indexer.weights import ensure_weights


def status(index_dir: Path) -> dict:
    """`cbir status --json`."""
    return index_status(index_dir).as_dict()


def check(index_dir: Path) -> dict:
    """`cbir status --check --json`: every check the index can run on itself, and what mends each problem."""
    problems = full_check(index_dir)
    return {"index": str(index_dir), "ok": not problems, "problems": [p.as_dict() for p in problems]}


def engines(index_dir: Path, model: str | None = None, weights: str | os.PathLike[str] | None = None,
            threads: int | None = None, measure: bool = False) -> dict:
    """`cbir engines --json`: the model's engines on this machine (measured now when ``measure``).

    The model is the one named, else the index's, else the default.
    """
    ref = resolve_model(model, index_status(index_dir).model)
    measurer = Measurer(ref, None if ref.trunk_file is not None else ensure_weights(weights),
                        inference_threads(threads))
    profile = measurer.measure(again=True) if measure else measurer.read()
    if profile is not None and not profile.complete:
        profile = None
    return {"model": ref.ref, "machine": describe(), "threads": measurer.threads,
            "profile_file": str(measurer.path),
            "profile": profile.as_dict() if profile is not None else None}
