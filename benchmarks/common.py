"""What every benchmark script shares: timing a call, and reporting its result as JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


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
