"""`cbir engines`: which engines run the model on this machine, how faithful and fast each is, and the choice."""

from __future__ import annotations

import os

from cbir.config import resolve_index_dir


def engines_report(model: str | None = None, weights: str | os.PathLike[str] | None = None,
                   threads: int | None = None, measure: bool = False, index_dir: str | None = None) -> dict:
    """The profile of the model's trunk on this machine (measured now when ``measure``), as ``--json`` prints it.

    The model is the one named, else the index's, else the default.
    """
    from cbir.status import index_status
    from indexer.engines.machine import describe, inference_threads
    from indexer.engines.measure import Measurer
    from indexer.model import resolve_model
    from indexer.weights import ensure_weights

    ref = resolve_model(model, index_status(resolve_index_dir(index_dir)).model)
    measurer = Measurer(ref, None if ref.trunk_file is not None else ensure_weights(weights),
                        inference_threads(threads))
    profile = measurer.measure(again=True) if measure else measurer.read()
    if profile is not None and not profile.complete:
        profile = None if not measure else profile
    return {"model": ref.ref, "machine": describe(), "threads": measurer.threads,
            "profile_file": str(measurer.path),
            "profile": profile.as_dict() if profile is not None else None}
