"""Where cbir keeps its data: XDG base directories with a ``CBIR_HOME`` override."""

from __future__ import annotations

import os
from pathlib import Path

# `cbir clean --min-confidence` default. Models' probabilities are calibrated on held-out photos (temperature
# scaling), so this means "about 7 in 10 right"; on the default model's held-out test split every photo it
# moved at this threshold was right (benchmarks/open_set.py).
DEFAULT_MIN_CONFIDENCE = 0.7
# Where `cbir duplicates --move-extras` sets copies aside; clean leaves that folder alone.
DUPLICATES_FOLDER = "duplicates"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "").strip()
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def cbir_home() -> Path | None:
    value = os.environ.get("CBIR_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else None


def data_dir() -> Path:
    home = cbir_home()
    return home if home else _xdg("XDG_DATA_HOME", ".local/share") / "cbir"


def cache_dir() -> Path:
    """Weights and runtime exports: $CBIR_CACHE, else $CBIR_HOME/cache, else $XDG_CACHE_HOME/cbir."""
    explicit = os.environ.get("CBIR_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = cbir_home()
    return home / "cache" if home else _xdg("XDG_CACHE_HOME", ".cache") / "cbir"


def default_index_dir() -> Path:
    return data_dir() / "index"


def resolve_index_dir(option: str | os.PathLike[str] | None) -> Path:
    """The index directory for a command: ``--index`` wins, then CBIR_HOME / XDG."""
    if option:
        return Path(option).expanduser().resolve()
    return default_index_dir()
