"""The engines: the choice between them (given fidelities and timings), and the real measurement on
whatever CPU runs the tests. Nothing here assumes which engine is faithful or fastest on this machine."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo


def _verdict(name, faithful=True, speed=None, cold=None, cosine=0.999):
    from indexer.engines.fidelity import bar
    from indexer.engines.profile import Verdict
    from indexer.engines.table import ENGINES

    return Verdict(name, faithful, {"images": 332, "min_cosine": cosine, "p1_cosine": cosine, "mean_cosine": cosine,
                                    "top1_agreement": [1.0]}, bar(ENGINES[name]), "int8/check", speed, cold)


def test_auto_picks_the_fastest_faithful_engine_for_each_job_and_says_why():
    from indexer.engines.profile import choose

    verdicts = [_verdict("keras-float32", speed=11.0, cold=5.9), _verdict("litert-float32", speed=15.0, cold=0.21),
                _verdict("openvino-float32", speed=16.0, cold=0.33),
                _verdict("openvino-bf16", faithful=False, speed=250.0, cold=0.31, cosine=0.97),
                _verdict("openvino-int8", speed=29.0, cold=0.30)]
    bulk, query = choose(verdicts, bulk=True), choose(verdicts, bulk=False)
    assert bulk.engine == "openvino-int8" and "29.0 images/s" in bulk.reason
    assert "openvino-bf16 is faster (250.0 images/s) but not faithful (min cosine 0.9700" in bulk.reason
    assert "next: openvino-float32" in bulk.reason
    assert query.engine == "litert-float32" and "0.21 s" in query.reason and "bf16" not in query.reason
    # Where int8 is not faithful, the next fastest faithful engine runs, not always LiteRT.
    verdicts[-1] = _verdict("openvino-int8", faithful=False, speed=29.0, cold=0.30, cosine=0.989)
    assert choose(verdicts, bulk=True).engine == "openvino-float32"
    # An engine that could not run, or was never timed, is never chosen; with nothing faithful, no choice.
    broken = [_verdict("openvino-float32", speed=None), _verdict("litert-float32", faithful=False, speed=99.0)]
    assert choose(broken, bulk=True) is None


def test_candidates_follow_what_the_machine_offers():
    from indexer.engines.table import candidates

    names = lambda *a: [e.name for e in candidates(*a)]  # noqa: E731
    assert names(True, True, [], True) == ["keras-float32", "litert-float32", "openvino-float32", "openvino-int8"]
    assert names(True, True, ["bf16"], True) == ["keras-float32", "litert-float32", "openvino-float32", "openvino-bf16",
                                                 "openvino-int8", "openvino-int8-bf16"]
    assert names(True, True, ["f16"], False) == ["keras-float32", "litert-float32", "openvino-float32", "openvino-f16"]
    assert names(False, False, ["bf16"], True) == ["keras-float32"]


def test_runtime_option_names_engines_and_refuses_unknown_ones():
    from cbir.errors import UsageError
    from indexer.engines.table import parse_runtime

    assert parse_runtime(None).auto and parse_runtime("lite").engine == "litert-float32"
    assert parse_runtime("openvino").family == "openvino" and parse_runtime("openvino-int8").engine == "openvino-int8"
    with pytest.raises(UsageError, match="unknown runtime 'gpu-please'"):
        parse_runtime("gpu-please")


def test_the_machine_key_changes_with_the_cpu_its_flags_and_the_libraries(monkeypatch):
    from indexer.engines import machine

    base = machine.machine_key()
    assert machine.machine_key() == base
    real, versions = machine.cpu(), machine.library_versions()
    monkeypatch.setattr(machine, "cpu", lambda: {**real, "flags": [*real["flags"], "amx_bf16"]})
    assert machine.machine_key() != base
    monkeypatch.setattr(machine, "cpu", lambda: {**real, "model": "Another CPU"})
    assert machine.machine_key() != base
    monkeypatch.setattr(machine, "cpu", lambda: real)
    monkeypatch.setattr(machine, "library_versions", lambda: {**versions, "openvino": "9999.0"})
    assert machine.machine_key() != base


@pytest.fixture(scope="module")
def default_keras(weights_file):
    from indexer.engines.keras_engine import KerasEmbedder
    from indexer.model import resolve_model
    from indexer.weights import WeightsFile

    return KerasEmbedder(WeightsFile(weights_file, "test"), resolve_model("default"))


def _unseen_pixels(photos) -> np.ndarray:
    """Photos none of the checks used: crops of the scikit-image photos, through cbir's own decoder."""
    import io

    from PIL import Image

    from indexer.loader import decode

    def pixels(array):
        buf = io.BytesIO()
        Image.fromarray(array).convert("RGB").save(buf, "PNG")
        return decode(buf.getvalue())

    return np.stack([pixels(a[a.shape[0] // 5:]) for a in photos.values()])


def test_every_engine_here_is_measured_and_the_choice_holds_on_photos_it_never_saw(measured_engines, weights_file,
                                                                                   default_keras, photos):
    from indexer.engines.build import build_engine
    from indexer.engines.fidelity import MIN_COSINE, faithful
    from indexer.engines.load import load_embedder
    from indexer.engines.measure import Measurer
    from indexer.engines.table import ENGINES
    from indexer.model import resolve_model

    profile = measured_engines
    assert profile.complete and profile.verdicts["keras-float32"].faithful
    assert set(profile.verdicts) == {e.name for e in Measurer(resolve_model("default"), None, 1).candidates()}
    for name, verdict in profile.verdicts.items():
        if name == "keras-float32" or verdict.error:
            continue
        # Each verdict is what its own figures say, on the photo set its precision calls for.
        assert verdict.faithful == faithful(ENGINES[name], verdict.check)
        assert verdict.check["images"] == (332 if ENGINES[name].reduced else 9)
        if not ENGINES[name].reduced and verdict.faithful:
            assert verdict.check["min_cosine"] >= 0.9999  # float32: the same function
    faithful_timed = [v for v in profile.verdicts.values() if v.faithful and v.images_per_s]
    assert profile.bulk.engine == max(faithful_timed, key=lambda v: v.images_per_s).engine
    assert profile.query.engine == min((v for v in faithful_timed if v.cold_s), key=lambda v: v.cold_s).engine

    engine = load_embedder(weights_file, "default")  # auto, bulk: the profile's choice
    assert engine.runtime == profile.bulk.engine and engine.choice == profile.bulk.reason
    assert engine.model_id == default_keras.model_id
    batch = _unseen_pixels(photos)
    reference = default_keras.embed(batch)
    for name in {profile.bulk.engine, profile.query.engine}:
        trunk = Measurer(resolve_model("default"), engine.weights, 1).trunk
        candidate = build_engine(name, resolve_model("default"), trunk, engine.weights, 2).embed(batch)
        assert (reference.vectors * candidate.vectors).sum(axis=1).min() >= MIN_COSINE
        assert (reference.category_probs.argmax(1) == candidate.category_probs.argmax(1)).all()


def test_a_small_job_before_measuring_runs_keras_and_a_big_one_measures(tmp_path, monkeypatch, weights_file):
    from indexer.engines import machine
    from indexer.engines.load import load_embedder
    from indexer.engines.measure import Measurer
    from indexer.model import resolve_model
    from indexer.weights import WeightsFile

    real = machine.cpu()
    monkeypatch.setattr(machine, "cpu", lambda: {**real, "model": "A CPU these tests never measured"})
    calls = []

    def measure(self, *args, **kwargs):
        calls.append(args)
        raise RuntimeError("measured")

    monkeypatch.setattr(Measurer, "measure", measure)
    small = load_embedder(weights_file, "default", work=8)
    assert small.runtime == "keras-float32" and "not measured on this machine yet" in small.choice
    assert load_embedder(weights_file, "default", bulk=False).runtime == "keras-float32"  # a one-off query
    assert not calls
    with pytest.raises(RuntimeError, match="measured"):
        load_embedder(weights_file, "default", work=5000)
    assert Measurer(resolve_model("default"), WeightsFile(weights_file, "t"), 2).read() is None  # another CPU's key


def test_an_engine_asked_for_by_name_is_refused_when_it_is_not_faithful_here(measured_engines, weights_file,
                                                                            monkeypatch):
    from cbir.errors import ModelError
    from indexer.engines import load
    from indexer.engines.profile import Verdict

    profile = measured_engines
    bad = dict(profile.verdicts, **{"openvino-float32": Verdict("openvino-float32", False, {
        "images": 9, "min_cosine": 0.95, "p1_cosine": 0.95, "mean_cosine": 0.97, "top1_agreement": [1.0, 1.0]},
        {"min_cosine": 0.99, "agreement": 1.0})})
    monkeypatch.setattr(load.Measurer, "read", lambda self: type(profile)(**{**profile.__dict__, "verdicts": bad}))
    with pytest.raises(ModelError, match=r"openvino-float32 is not faithful \(min cosine 0.9500"):
        load.load_embedder(weights_file, "default", runtime="openvino-float32")


def test_cold_query_never_imports_tensorflow_and_engines_agree(photo_tree, cli_env):
    proc = run_cbir(["index", str(photo_tree), "--runtime", "keras", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    probe = (
        "import sys\nfrom cbir.cli import main\n"
        f"sys.argv = ['cbir', 'query', {str(photo_tree / 'coffee.jpg')!r}, '--exclude-self', '-k', '3', '--json',"
        " '--runtime', 'lite']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('TF_IMPORTED' if 'tensorflow' in sys.modules else 'NO_TF', file=sys.stderr)\n"
    )
    lite = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=300)
    assert lite.returncode == 0, lite.stderr
    assert "NO_TF" in lite.stderr and "delegate" not in lite.stderr  # the runtime's native log is kept quiet
    keras = run_cbir(["query", str(photo_tree / "coffee.jpg"), "--exclude-self", "-k", "3", "--json",
                      "--runtime", "keras", "--timings"], cli_env)
    assert keras.returncode == 0, keras.stderr
    assert "load the model (keras-float32)" in keras.stderr and "engine: keras-float32: asked for" in keras.stderr
    lite_hits, keras_hits = json.loads(lite.stdout), json.loads(keras.stdout)
    assert [h["path"] for h in lite_hits] == [h["path"] for h in keras_hits]
    assert all(abs(a["score"] - b["score"]) < 0.02 for a, b in zip(lite_hits, keras_hits, strict=True))


def test_status_and_engines_say_which_engine_runs_and_why(photo_tree, cli_env, measured_engines):
    assert run_cbir(["index", str(photo_tree)], cli_env).returncode == 0
    status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
    assert status["engines"]["bulk"]["engine"] == measured_engines.bulk.engine
    assert status["engines"]["query"]["reason"] == measured_engines.query.reason
    plain = run_cbir(["engines"], cli_env)
    assert plain.returncode == 0, plain.stderr
    assert f"bulk work: {measured_engines.bulk.engine}" in plain.stdout and "min cosine" in plain.stdout
    report = json.loads(run_cbir(["engines", "--json"], cli_env).stdout)
    assert report["profile"]["bulk"]["engine"] == measured_engines.bulk.engine and report["machine"]["cpu"]


def test_unknown_runtime_is_a_usage_error(photo_tree, cli_env):
    env = dict(cli_env, CBIR_RUNTIME="gpu-please")
    save_photo(np.zeros((8, 8, 3), np.uint8), photo_tree / "black.png")
    proc = run_cbir(["index", str(photo_tree)], env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("cbir: error: unknown runtime")


def test_exports_of_an_older_format_are_removed_and_current_ones_kept(tmp_path):
    from indexer.engines.files import EXPORT_FORMAT, TrunkFiles, prune_old_formats

    trunk = TrunkFiles(tmp_path, "imagenet-trunk", "k1")
    old = {"imagenet-trunk-float32-abc": ".tflite", "imagenet-trunk-openvino-int8-abc": ".xml"}
    for stem, suffix in old.items():
        (tmp_path / f"{stem}.json").write_text(json.dumps({"format": 1, "key": "abc"}))
        (tmp_path / f"{stem}{suffix}").write_bytes(b"x")
    (tmp_path / "imagenet-trunk-openvino-int8-abc.bin").write_bytes(b"x")
    current = trunk.export("openvino-int8", ".xml")
    current.meta.write_text(json.dumps({"format": EXPORT_FORMAT, "key": "k1"}))
    current.model.write_bytes(b"x")
    profile = trunk.profile("m1")
    profile.write_text(json.dumps({"format": 1}))
    other = tmp_path / "my-model-float32-abc.json"  # another trunk's name: not this one's to judge
    other.write_text(json.dumps({"format": 1}))
    removed = prune_old_formats(trunk)
    assert len(removed) == 5 and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [current.meta.name, current.model.name, profile.name, other.name])
