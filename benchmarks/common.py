"""What every benchmark script shares: timing a call, reporting its result as JSON, the ImageNet classifier."""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_cbir(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """``python -m cbir ARGS`` as a user would run it, in ``env`` (its CBIR_HOME); stdout and stderr kept."""
    return subprocess.run([sys.executable, "-m", "cbir", *args], env=env, capture_output=True, text=True)


def machine() -> dict:
    """The machine a figure was measured on: CPU model, notable flags, cores, engine libraries."""
    from indexer.engines.machine import describe

    return describe()


def emit_json(result: object, path: Path | None) -> None:
    """Print the result as JSON after the table, and write it to ``--json`` when given; a dict result
    records the machine it was measured on."""
    if isinstance(result, dict) and "machine" not in result:
        result = {**result, "machine": machine()}
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")


@functools.cache
def imagenet_classifier() -> tuple:
    """The ImageNet classifier's (kernel, bias) from the weights cbir provisions."""
    from indexer.tags import load_classifier
    from indexer.weights import ensure_weights

    found = load_classifier(ensure_weights().path)
    if found is None:
        raise SystemExit("the ResNet-50 weights cbir found hold no ImageNet classifier")
    return found


def index_contents(index_dir: Path):
    """What a benchmark builds a larger catalog from: (ids, their vectors as one matrix, id -> row, the claim
    that opens a writer on the same model)."""
    import numpy as np

    from index_store.catalog import CatalogReader
    from index_store.writer import fixed_claim

    with CatalogReader.open(index_dir) as reader:
        ids: list[int] = []
        vectors = []
        for chunk_ids, chunk in reader.iter_vectors():
            ids += chunk_ids.tolist()
            vectors.append(chunk)
        rows = reader.rows_by_ids(ids)
        claim = fixed_claim(reader.model_id or "", reader.dim, reader.model_ref)
    return ids, np.concatenate(vectors), rows, claim


EXTRA_PHOTOS = Path(tempfile.gettempdir()) / "cbir-extra-photos"


def add_extra_option(parser: argparse.ArgumentParser) -> None:
    """``--extra DIR``: where benchmarks/extra_photos.py's photos are (``ensure_extra_photos`` fetches them)."""
    parser.add_argument("--extra", type=Path, default=EXTRA_PHOTOS,
                        help="benchmarks/extra_photos.py's photos (fetched here when missing)")


def ensure_extra_photos(folder: Path) -> Path:
    """``folder``, holding benchmarks/extra_photos.py's photos: fetched there first when they are missing."""
    if not (folder / "manifest.csv").is_file():
        subprocess.run([sys.executable, "-m", "benchmarks.extra_photos", str(folder)], check=True,
                       cwd=Path(__file__).resolve().parents[1])
    return folder
