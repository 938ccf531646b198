"""The LiteRT engine: exported from the Keras model in use, checked, cached, and faithful on real photos."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo

pytestmark = pytest.mark.slow  # model exports and cold processes: minutes on 2 cores


@pytest.fixture(scope="module")
def default_keras(weights_file):
    from indexer.keras_embedder import KerasEmbedder
    from indexer.model import resolve_model
    from indexer.weights import WeightsFile

    return KerasEmbedder(WeightsFile(weights_file, "test"), resolve_model("default"))


def test_export_is_checked_cached_and_faithful_on_real_photos(weights_file, default_keras, photos, tmp_path,
                                                              monkeypatch):
    from indexer.embedder import load_embedder
    from indexer.lite_embedder import LiteEmbedder
    from indexer.lite_export import MIN_COSINE, runtime_files, runtime_key
    from indexer.model import resolve_model
    from indexer.weights import WeightsFile

    monkeypatch.setenv("CBIR_CACHE", str(tmp_path / "cache"))
    lite = load_embedder(weights_file, "default", runtime="lite")
    assert isinstance(lite, LiteEmbedder) and lite.model_id == default_keras.model_id

    ref = resolve_model("default")
    files = runtime_files(ref, runtime_key(ref, WeightsFile(weights_file, "t").digest()))
    assert files.model.is_file() and files.model.parent == tmp_path / "cache" / "runtime"
    meta = json.loads(files.meta.read_text())
    assert meta["faithful"] and meta["check"]["images"] >= 8 and meta["check"]["min_cosine"] >= MIN_COSINE
    assert meta["quantization"] == "float32" and meta["check"]["min_cosine"] >= 0.9999  # the same function

    stamp = files.model.stat().st_mtime_ns
    again = load_embedder(weights_file, "default", runtime="lite")  # reused, not exported again
    assert isinstance(again, LiteEmbedder) and files.model.stat().st_mtime_ns == stamp

    # Fidelity on photos the check never saw (other sizes and crops of the library photos).
    import io

    from PIL import Image

    from indexer.loader import decode

    def pixels(array):
        buf = io.BytesIO()
        Image.fromarray(array).convert("RGB").save(buf, "PNG")
        return decode(buf.getvalue())

    batch = np.stack([pixels(a[: a.shape[0] * 3 // 4]) for a in photos.values()])
    reference, candidate = default_keras.embed(batch), lite.embed(batch)
    cosine = (reference.vectors * candidate.vectors).sum(axis=1)
    assert cosine.min() >= MIN_COSINE
    assert (reference.category_probs.argmax(1) == candidate.category_probs.argmax(1)).all()
    assert (reference.imagenet_probs.argmax(1) == candidate.imagenet_probs.argmax(1)).mean() >= 0.9


def test_one_export_per_trunk_whatever_the_head(tmp_path, weights_file):
    from indexer.lite_export import runtime_files, runtime_key
    from indexer.model import default_model_dir, resolve_model

    folder = tmp_path / "mine"
    shutil.copytree(default_model_dir(), folder)
    ref = resolve_model(str(folder))
    key = runtime_key(ref, "weights-a")
    assert runtime_key(ref, "weights-a") == key
    assert runtime_key(ref, "weights-b") != key  # other ImageNet weights
    head = folder / "categorizer.npz"
    head.write_bytes(head.read_bytes() + b"\0")  # any change to the head's bytes...
    assert runtime_key(ref, "weights-a") == key  # ...needs no new export: categories are computed in NumPy
    imagenet, default = resolve_model("imagenet"), resolve_model("default")
    assert runtime_files(ref, key) == runtime_files(imagenet, key) == runtime_files(default, key)
    (folder / "trunk.keras").write_bytes(b"a fine-tuned trunk")
    card = json.loads((folder / "model_card.json").read_text())
    card["trunk"] = {"file": "trunk.keras", "id": "resnet50-ft-x"}
    (folder / "model_card.json").write_text(json.dumps(card))
    tuned = resolve_model(str(folder))
    assert runtime_key(tuned, None) != key
    assert runtime_files(tuned, runtime_key(tuned, None)).model.parent == folder / "runtime"  # travels with it


def test_cold_query_never_imports_tensorflow_and_engines_agree(photo_tree, cli_env):
    proc = run_cbir(["index", str(photo_tree), "--runtime", "keras", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    # The first lite use on a machine makes the export (with TensorFlow); every query after it is cold-clean.
    first = run_cbir(["query", str(photo_tree / "moon.jpg"), "--runtime", "lite"], cli_env)
    assert first.returncode == 0, first.stderr
    probe = (
        "import sys\nfrom cbir.cli import main\n"
        f"sys.argv = ['cbir', 'query', {str(photo_tree / 'coffee.jpg')!r}, '--exclude-self', '-k', '3', '--json']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('TF_IMPORTED' if 'tensorflow' in sys.modules else 'NO_TF', file=sys.stderr)\n"
    )
    lite = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=300)
    assert lite.returncode == 0, lite.stderr
    assert "NO_TF" in lite.stderr and "delegate" not in lite.stderr  # the runtime's native log is kept quiet
    keras = run_cbir(["query", str(photo_tree / "coffee.jpg"), "--exclude-self", "-k", "3", "--json",
                      "--runtime", "keras", "--timings"], cli_env)
    assert keras.returncode == 0, keras.stderr
    phases = [m.group(1) for m in re.finditer(r"^cbir: +[\d.]+ ms  (.+)$", keras.stderr, re.MULTILINE)]
    assert "load the model (keras)" in phases and "load the search index" in phases and phases[-1].startswith("in all")
    lite_hits, keras_hits = json.loads(lite.stdout), json.loads(keras.stdout)
    assert [h["path"] for h in lite_hits] == [h["path"] for h in keras_hits]
    assert all(abs(a["score"] - b["score"]) < 0.02 for a, b in zip(lite_hits, keras_hits, strict=True))


def test_unknown_runtime_is_a_usage_error(photo_tree, cli_env):
    env = dict(cli_env, CBIR_RUNTIME="gpu-please")
    save_photo(np.zeros((8, 8, 3), np.uint8), photo_tree / "black.png")
    proc = run_cbir(["index", str(photo_tree)], env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("cbir: error: unknown runtime")


def _uncropped_pixels(photos) -> np.ndarray:
    import io

    from PIL import Image

    from indexer.loader import decode

    def pixels(array):
        buf = io.BytesIO()
        Image.fromarray(array).convert("RGB").save(buf, "PNG")
        return decode(buf.getvalue())

    return np.stack([pixels(a[a.shape[0] // 5:]) for a in photos.values()])


def test_openvino_int8_is_checked_on_shipped_photos_faithful_and_picked_by_auto(weights_file, default_keras,
                                                                                 photos):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from indexer.embedder import load_embedder
    from indexer.openvino_engine import MIN_CATEGORY_AGREEMENT, MIN_COSINE, OpenVinoEmbedder
    from indexer.runtime_choice import choose_runtime, gpu_available

    engine = load_embedder(weights_file, "default", runtime="openvino")  # the test cache's export, made once
    assert isinstance(engine, OpenVinoEmbedder) and engine.runtime == "openvino-int8"
    assert engine.model_id == default_keras.model_id
    meta = json.loads(next(engine.net_files.parent.glob(engine.net_files.stem + ".json")).read_text())
    assert meta["faithful"] and meta["check"]["images"] >= 300
    assert meta["check"]["min_cosine"] >= MIN_COSINE and meta["check"]["top1_agreement"][-1] >= MIN_CATEGORY_AGREEMENT

    # Photos neither the calibration nor the check used: crops of the scikit-image photos.
    batch = _uncropped_pixels(photos)
    reference, candidate = default_keras.embed(batch), engine.embed(batch)
    assert (reference.vectors * candidate.vectors).sum(axis=1).min() >= MIN_COSINE
    assert (reference.category_probs.argmax(1) == candidate.category_probs.argmax(1)).all()

    if not gpu_available():
        assert choose_runtime("auto") == "openvino" and choose_runtime("auto", bulk=False) == "lite"
    assert choose_runtime("lite") == "lite" and choose_runtime("openvino", bulk=False) == "openvino"


def test_an_unfaithful_int8_export_falls_back_to_float32_and_says_so(weights_file, default_keras, photos, tmp_path,
                                                                    monkeypatch, caplog):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import logging

    import indexer.openvino_engine as engine_module
    from indexer.embedder import load_embedder
    from indexer.lite_embedder import LiteEmbedder

    monkeypatch.setenv("CBIR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engine_module, "MIN_COSINE", 0.99999)  # a bar no int8 model clears
    with caplog.at_level(logging.INFO, logger="indexer"):
        engine = load_embedder(weights_file, "default", runtime="openvino")
    assert engine.runtime == "openvino-float32"
    assert any("below the bar" in r.getMessage() and "openvino-int8" in r.getMessage() for r in caplog.records)
    assert not list((tmp_path / "cache" / "runtime").glob("*openvino-int8*.xml"))  # not kept, only its verdict
    batch = _uncropped_pixels(photos)
    cosine = (default_keras.embed(batch).vectors * engine.embed(batch).vectors).sum(axis=1)
    assert cosine.min() >= 0.9999  # float32: the same function
    # 'auto' does not build it again and runs LiteRT.
    assert isinstance(load_embedder(weights_file, "default"), LiteEmbedder)
