"""Which engine runs the model: Keras (float32, GPU-capable) or the model's LiteRT export.

Deliberately light: the CLI reads the help text here at import time.
"""

from __future__ import annotations

import os

from cbir.errors import UsageError

RUNTIMES = ("auto", "lite", "keras")
RUNTIME_HELP = ("Inference engine: 'lite' (the model's LiteRT export, built and checked once, the "
                "fastest on a CPU), 'keras' (float32 TensorFlow, uses a GPU), or 'auto': keras when a GPU "
                "is visible, else lite (default: $CBIR_RUNTIME, else auto).")


def choose_runtime(option: str | None) -> str:
    """'lite' or 'keras' for a ``--runtime`` choice (or $CBIR_RUNTIME)."""
    choice = (option or os.environ.get("CBIR_RUNTIME", "").strip() or "auto").lower()
    if choice == "tflite":
        choice = "lite"
    if choice not in RUNTIMES:
        raise UsageError(f"unknown runtime {choice!r}; choose one of {', '.join(RUNTIMES)}")
    if choice == "auto":
        return "keras" if gpu_available() else "lite"
    return choice


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
