"""Every engine cbir can run, named for what it computes, and what ``--runtime`` asks for.

Deliberately light: the CLI reads the help text here at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cbir.errors import UsageError

KERAS = "keras-float32"
LITERT = "litert-float32"
OPENVINO_FLOAT = "openvino-float32"
OPENVINO_INT8 = "openvino-int8"
# The CPU's native reduced float precision, when OpenVINO reports one: bf16 on CPUs with AMX or
# AVX512-BF16, f16 on ARM CPUs with half-precision arithmetic.
REDUCED_PRECISIONS = ("bf16", "f16")
# Measuring the engines costs one to three minutes on 2 cores and then makes embedding 2 to 8 times
# faster than Keras (benchmarks/inference.py); a job of about this many images pays for it by itself.
MEASURE_FROM = 500


@dataclass(frozen=True)
class Engine:
    """One way to run the network: ``family`` is the library; ``weights`` the form of the network it runs
    (the Keras model, the LiteRT export, OpenVINO's float or int8 model); ``precision`` what the layers
    that are not int8 compute in."""

    name: str
    family: str  # keras | litert | openvino
    weights: str  # keras | tflite | float | int8
    precision: str  # f32 | bf16 | f16

    @property
    def reduced(self) -> bool:
        """Whether it computes anything below float32: it then meets the bar of reduced precision."""
        return self.weights == "int8" or self.precision != "f32"


def _openvino(weights: str, precision: str) -> Engine:
    stem = "openvino-int8" if weights == "int8" else "openvino"
    name = f"{stem}-{precision}" if precision != "f32" else (OPENVINO_INT8 if weights == "int8" else OPENVINO_FLOAT)
    return Engine(name, "openvino", weights, precision)


ENGINES: dict[str, Engine] = {e.name: e for e in [
    Engine(KERAS, "keras", "keras", "f32"),
    Engine(LITERT, "litert", "tflite", "f32"),
    _openvino("float", "f32"),
    *(_openvino("float", p) for p in REDUCED_PRECISIONS),
    _openvino("int8", "f32"),
    *(_openvino("int8", p) for p in REDUCED_PRECISIONS),
]}
FAMILIES = {"keras": KERAS, "lite": LITERT, "litert": LITERT, "openvino": None, "tflite": LITERT}
RUNTIMES = ("auto", "keras", "lite", "openvino", *ENGINES)
RUNTIME_HELP = (
    "Inference engine: 'auto' picks the fastest engine that is faithful to float32 Keras on this machine "
    "(measured once per CPU and model, see `cbir engines`), separately for bulk work and for a single query; "
    "'keras' (float32 TensorFlow, uses a GPU), 'lite' (LiteRT float32), 'openvino' (the fastest faithful "
    "OpenVINO engine), or an engine by name: " + ", ".join(ENGINES) + " (default: $CBIR_RUNTIME, else auto).")


@dataclass(frozen=True)
class Request:
    """What ``--runtime`` asked for: 'auto', every OpenVINO engine ('openvino'), or one engine by name."""

    option: str
    engine: str | None = None  # one engine, by name

    @property
    def auto(self) -> bool:
        return self.option == "auto"

    @property
    def family(self) -> str | None:
        return "openvino" if self.option == "openvino" else None


def parse_runtime(option: str | None) -> Request:
    """The request a ``--runtime`` value (or $CBIR_RUNTIME) makes."""
    choice = (option or os.environ.get("CBIR_RUNTIME", "").strip() or "auto").lower()
    if choice == "auto":
        return Request("auto")
    if choice in FAMILIES:
        return Request(choice, FAMILIES[choice])
    if choice in ENGINES:
        return Request(choice, choice)
    raise UsageError(f"unknown runtime {choice!r}; choose one of {', '.join(RUNTIMES)}")


def candidates(litert: bool, openvino: bool, reduced: list[str], int8: bool) -> list[Engine]:
    """The engines this machine can run: ``litert`` and ``openvino`` say which libraries are installed,
    ``reduced`` the CPU's reduced float precisions that OpenVINO offers (bf16, f16), ``int8`` whether an int8
    model can be made (NNCF is installed). Keras, the reference, is always one."""
    out = [ENGINES[KERAS]] + ([ENGINES[LITERT]] if litert else [])
    if openvino:
        out += [e for e in ENGINES.values() if e.family == "openvino" and (e.weights == "float" or int8)
                and (e.precision == "f32" or e.precision in reduced)]
    return out
