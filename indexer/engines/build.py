"""An engine's embedder from a trunk's exports (made beforehand by indexer.engines.prepare)."""

from __future__ import annotations

from collections import OrderedDict

from cbir.errors import ModelError
from indexer.embedder import Embedder
from indexer.engines.files import RuntimeFiles, TrunkFiles
from indexer.engines.keras_engine import KerasEmbedder
from indexer.engines.litert_engine import LiteEmbedder
from indexer.engines.openvino_engine import OpenVinoEmbedder
from indexer.engines.table import ENGINES, KERAS, Engine
from indexer.model import ModelRef, head_id
from indexer.weights import WeightsFile

# What each form of the network is saved as, and the files beside it.
EXPORTS = {"tflite": ("litert-float32", ".tflite", ()), "float": ("openvino-float32", ".xml", (".bin",)),
           "int8": ("openvino-int8", ".xml", (".bin",)), "reference": ("keras-reference", ".npz", ())}


def export_files(trunk: TrunkFiles, weights: str) -> RuntimeFiles:
    name, suffix, _ = EXPORTS[weights]
    return trunk.export(name, suffix)


def read_export(trunk: TrunkFiles, weights: str) -> dict | None:
    """The export's sidecar when the export is complete and current, else None."""
    return export_files(trunk, weights).read_meta(EXPORTS[weights][2])


# Engines loaded in this process, most recently used last: a server's jobs, or the tests' many commands run
# in one process, load a model once, not once per job.
_LOADED: OrderedDict[tuple, Embedder] = OrderedDict()
KEEP_LOADED = 2


def build_engine(engine: Engine | str, ref: ModelRef, trunk: TrunkFiles | None, weights: WeightsFile | None,
                 threads: int) -> Embedder:
    """The embedder of ``engine`` (its export must exist, except for Keras, which needs none); one already
    loaded in this process for the same model, weights, exports and threads is reused."""
    engine = ENGINES[engine] if isinstance(engine, str) else engine
    key = (engine.name, ref.ref, head_id(ref), str(weights.path) if weights else None, weights and weights.sha256,
           trunk.key if trunk else None, threads)
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    embedder = _load(engine, ref, trunk, weights, threads)
    _LOADED[key] = embedder
    while len(_LOADED) > KEEP_LOADED:
        _LOADED.popitem(last=False)
    return embedder


def _load(engine: Engine, ref: ModelRef, trunk: TrunkFiles | None, weights: WeightsFile | None,
          threads: int) -> Embedder:
    if engine.name == KERAS:

        return KerasEmbedder(weights, ref)
    if trunk is None:
        raise ModelError(f"{engine.name} runs an export, and no trunk's exports were given")
    files = export_files(trunk, engine.weights)
    meta = read_export(trunk, engine.weights)
    if meta is None:
        raise ModelError(f"the {engine.weights} export of {ref.name} for {engine.name} is missing from "
                         f"{files.model.parent}")
    if engine.family == "litert":

        return LiteEmbedder(ref, files.model, meta, threads, weights)

    return OpenVinoEmbedder(engine, ref, files, meta, threads, weights)
