"""The child process that runs one step of measuring engines (indexer.engines.prepare).

    python -m indexer.engines.steps STEP ARGS.json RESULT.json

ARGS names the model, weights, trunk folder and the step's own arguments; the step's answer is written
to RESULT as JSON. A failed step exits non-zero with its error on stderr, which the parent reports.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from index_store.atomic import atomic_write_text
from indexer.engines import prepare
from indexer.engines.files import TrunkFiles
from indexer.model import resolve_model
from indexer.weights import WeightsFile


def run_step(step: str, args: dict) -> object:
    ref = resolve_model(args["model"])
    trunk = TrunkFiles(Path(args["folder"]), args["stem"], args["key"])
    weights = WeightsFile(Path(args["weights"]), "cache", args.get("weights_sha256")) if args.get("weights") else None
    if step == "export":
        return prepare.export(ref, trunk, weights, args["threads"], args["time_keras"])
    if step == "quantize":
        return prepare.quantize(ref, trunk)
    if step == "check":
        return prepare.check(ref, trunk, weights, args["threads"], args["engines"], args["timing"])
    if step == "cold":
        return prepare.cold(ref, trunk, weights, args["threads"], args["engine"])
    raise ValueError(f"unknown step {step!r}")


def main(argv: list[str]) -> None:
    step, args_path, result_path = argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = run_step(step, json.loads(Path(args_path).read_text()))
    atomic_write_text(Path(result_path), json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
