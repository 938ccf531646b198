"""The engine a command runs: ``load_embedder``.

'auto' runs what this machine's profile chose (indexer.engines.profile): the fastest faithful engine for
bulk work or for a one-off query. Until the engines are measured, a job too small to pay for measuring
runs float32 Keras, the reference itself, which needs no export; a job of ``MEASURE_FROM`` images or
more measures them first (about two minutes, once per CPU, libraries and model). An engine named by
``--runtime`` is prepared and checked alone, and refused when it is not faithful here.
"""

from __future__ import annotations

import logging
import os

from cbir.errors import ModelError
from indexer.embedder import Embedder
from indexer.engines.build import build_engine
from indexer.engines.machine import gpu_available, inference_threads
from indexer.engines.measure import Measurer
from indexer.engines.profile import Profile, choose
from indexer.engines.table import ENGINES, KERAS, MEASURE_FROM, parse_runtime
from indexer.model import ModelRef, resolve_model
from indexer.weights import ensure_weights

log = logging.getLogger(__name__)


def load_embedder(weights_path: str | os.PathLike[str] | None = None, model: ModelRef | str | None = None,
                  runtime: str | None = None, threads: int | None = None, bulk: bool = True,
                  work: int | None = None) -> Embedder:
    """The embedder for a model on the engine ``runtime`` asks for. ``bulk`` says whether throughput matters
    (indexing, evaluating, a server) or the time to a first result (one picture in a new process); ``work``
    is how many images the job will embed, when known. The result's ``choice`` says why it runs."""
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    weights = None if ref.trunk_file is not None else ensure_weights(weights_path)
    request = parse_runtime(runtime)
    count = inference_threads(threads)
    if (request.auto and gpu_available()) or request.engine == KERAS:
        return _chosen(build_engine(KERAS, ref, None, weights, count),
                       "a GPU is visible" if request.auto else "asked for by --runtime")
    measurer = Measurer(ref, weights, count)
    profile = measurer.read()
    if request.auto:
        if profile is None or not profile.complete:
            if (work is not None and work < MEASURE_FROM) or (work is None and not bulk):
                return _chosen(build_engine(KERAS, ref, measurer.trunk, weights, count),
                               f"the engines are not measured on this machine yet, and {_jobs(work)} does not pay "
                               f"for measuring them (from {MEASURE_FROM} images, or `cbir engines --measure`)")
            profile = measurer.measure()
        return _from_profile(profile, bulk, ref, measurer, weights, count)
    if request.family:
        if profile is None or not profile.complete:
            profile = measurer.measure()
        return _fastest_of_family(profile, request.family, bulk, ref, measurer, weights, count)
    name = request.engine or KERAS
    if profile is None or name not in profile.verdicts:
        profile = measurer.measure([name])
    verdict = profile.verdicts[name]
    if not verdict.faithful:
        raise ModelError(f"{name} is {verdict.why_not()} on this machine; choose another --runtime "
                         "(`cbir engines` lists them)")
    return _chosen(build_engine(name, ref, measurer.trunk, weights, count), "asked for by --runtime")


def _jobs(work: int | None) -> str:
    return "a one-off query" if work is None else f"a job of {work} image{'s' if work != 1 else ''}"


def _chosen(embedder: Embedder, reason: str) -> Embedder:
    embedder.choice = reason
    return embedder


def _from_profile(profile: Profile, bulk: bool, ref: ModelRef, measurer: Measurer, weights, threads: int) -> Embedder:
    choice = profile.choice(bulk)
    if choice is None:  # nothing faithful could be timed: the reference always is
        return _chosen(build_engine(KERAS, ref, measurer.trunk, weights, threads), "no other engine is faithful here")
    try:
        return _chosen(build_engine(choice.engine, ref, measurer.trunk, weights, threads), choice.reason)
    except ModelError:  # its export was removed from the cache since: measure again
        profile = measurer.measure()
        choice = profile.choice(bulk)
        name = choice.engine if choice else KERAS
        return _chosen(build_engine(name, ref, measurer.trunk, weights, threads),
                       choice.reason if choice else "no other engine is faithful here")


def _fastest_of_family(profile: Profile, family: str, bulk: bool, ref: ModelRef, measurer: Measurer, weights,
                       threads: int) -> Embedder:

    verdicts = [v for v in profile.verdicts.values() if ENGINES[v.engine].family == family]
    choice = choose(verdicts, bulk)
    if choice is None:
        raise ModelError(f"no {family} engine is faithful on this machine (`cbir engines` shows why)")
    return _chosen(build_engine(choice.engine, ref, measurer.trunk, weights, threads), choice.reason)
