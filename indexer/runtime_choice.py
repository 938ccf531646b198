"""Which engine runs the model: Keras (float32, GPU-capable), the LiteRT export, or OpenVINO (float32 or int8).

Deliberately light: the CLI reads the help text here at import time.
"""

from __future__ import annotations

import os

from cbir.errors import UsageError

RUNTIMES = ("auto", "lite", "openvino", "keras")
RUNTIME_HELP = ("Inference engine: 'lite' (the model's LiteRT export, float32), 'openvino' (OpenVINO: int8 when "
                "its export passes the fidelity check, else float32), 'keras' (float32 TensorFlow, uses a GPU), or "
                "'auto': keras when a GPU is visible, else OpenVINO int8 (when installed and faithful) to index and "
                "lite for a single query "
                "(default: $CBIR_RUNTIME, else auto). Each export is made and checked once per model.")


def _option(option: str | None) -> str:
    choice = (option or os.environ.get("CBIR_RUNTIME", "").strip() or "auto").lower()
    choice = "lite" if choice == "tflite" else choice
    if choice not in RUNTIMES:
        raise UsageError(f"unknown runtime {choice!r}; choose one of {', '.join(RUNTIMES)}")
    return choice


def choose_runtime(option: str | None, bulk: bool = True) -> str:
    """'lite', 'openvino' or 'keras' for a ``--runtime`` choice (or $CBIR_RUNTIME).

    'auto' picks int8 OpenVINO for ``bulk`` work (indexing, evaluating, a server), where its speed pays;
    for one picture in a new process (`cbir query`) LiteRT starts about half a second sooner, and that
    is most of the time such a command takes.
    """
    choice = _option(option)
    if choice == "auto":
        if gpu_available():
            return "keras"
        from indexer.openvino_engine import int8_available

        return "openvino" if bulk and int8_available() else "lite"
    return choice


def runtime_explicit(option: str | None) -> bool:
    """True when the engine was chosen by name rather than by 'auto'."""
    return _option(option) != "auto"


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU; TensorFlow is only imported where a GPU device node exists."""
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def inference_threads(option: int | None = None) -> int:
    value = option or os.environ.get("CBIR_THREADS", "").strip()
    try:
        threads = int(value) if value else 0
    except ValueError:
        raise UsageError(f"CBIR_THREADS must be a whole number, not {value!r}") from None
    return threads if threads > 0 else (os.cpu_count() or 1)
