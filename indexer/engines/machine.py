"""Which machine this is, as far as engine speed and fidelity go: the CPU, its instruction sets and the
libraries that run the network.

An engine's verdict (faithful or not, how fast) holds for one such key; an index or a cache used from
another machine, or after a library upgrade, gets its engines measured again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform

from cbir.errors import UsageError

# The libraries whose code computes the network or makes its exports.
ENGINE_LIBRARIES = ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "openvino", "nncf")


@functools.cache
def cpu() -> dict[str, object]:
    """The CPU's model name and instruction-set flags (from /proc/cpuinfo where there is one)."""
    name, flags = platform.processor() or platform.machine(), list[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and value.strip():
                    name = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = sorted(set(value.split()))
    except OSError:
        pass
    return {"model": name, "arch": platform.machine(), "flags": flags}


def notable_flags(flags: list[str]) -> list[str]:
    """The flags that decide which kernels run fastest, for people to read (the key uses all of them)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
              "amx_tile", "avx512_fp16", "asimd", "asimddp", "fphp", "bf16", "i8mm", "sve")
    return [f for f in wanted if f in flags]


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ENGINE_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine_key() -> str:
    """A digest of the CPU model, all its flags and the engine libraries' versions. The thread count is not
    in it: engines are timed with the default count, and which is fastest hardly depends on it."""
    info = cpu()
    parts = [f"model={info['model']}", f"arch={info['arch']}", "flags=" + " ".join(info["flags"]),  # type: ignore[arg-type]
             *(f"{k}={v}" for k, v in sorted(library_versions().items()))]
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def describe() -> dict[str, object]:
    """What a profile or a benchmark records of this machine."""
    info = cpu()
    return {"cpu": info["model"], "arch": info["arch"], "cores": os.cpu_count(),
            "flags": notable_flags(info["flags"]), "libraries": library_versions()}  # type: ignore[arg-type]


def inference_threads(option: int | None = None) -> int:
    value = option or os.environ.get("CBIR_THREADS", "").strip()
    try:
        threads = int(value) if value else 0
    except ValueError:
        raise UsageError(f"CBIR_THREADS must be a whole number, not {value!r}") from None
    return threads if threads > 0 else (os.cpu_count() or 1)


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU; TensorFlow is only imported where a GPU device node exists."""
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
