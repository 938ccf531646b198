"""`cbir train` / `cbir evaluate` on a tiny real two-class dataset, and models used at index time."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cbir, save_photo
from tests.datasets import make_two_class_dataset

pytestmark = pytest.mark.slow  # real training runs: minutes on 2 cores


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def dataset(workspace, photos):
    root = make_two_class_dataset(workspace / "data", photos, per_class=12, seed=0)
    (root / "photo" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    hidden = root / ".thumbnails"  # a hidden folder is never a class: said, not silently dropped
    hidden.mkdir()
    shutil.copy(next((root / "photo").glob("*.jpg")), hidden / "thumb.jpg")
    return root


@pytest.fixture(scope="module")
def module_env(workspace, weights_file):
    import os

    from cbir.config import cache_dir

    env = dict(os.environ)
    env.update(CBIR_HOME=str(workspace / "home"), CBIR_CACHE=str(cache_dir()), CBIR_WEIGHTS=str(weights_file),
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


@pytest.fixture(scope="module")
def trained(workspace, dataset, module_env):
    out = workspace / "model"
    proc = run_cbir(["train", str(dataset), "--out", str(out), "--val-fraction", "0.2", "--test-fraction", "0.3",
                     "--augment-copies", "1", "--seed", "1", "--name", "docs-vs-photos"], module_env)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_reports_the_data_and_writes_a_complete_model_folder(trained, dataset):
    out, proc = trained
    assert "left out" in proc.stderr and "broken.jpg" in proc.stderr
    assert "24 images in 2 classes: document 12, photo 12" in proc.stderr
    assert "left out folder '.thumbnails': it cannot be a class (names a hidden or special folder)" in proc.stderr
    assert (dataset / "photo" / "broken.jpg").exists()  # reported, never touched
    card = json.loads((out / "model_card.json").read_text())
    assert card["format"] == "cbir-model" and card["classes"] == ["document", "photo"]
    assert card["name"] == "docs-vs-photos" and card["fine_tune"]["mode"] == "head"
    assert card["data"]["images"] == 24 and card["data"]["unreadable"] == 1
    assert card["input"]["size"] == [224, 224, 3] and "BGR" in card["input"]["preprocessing"]
    assert card["trained"]["cbir_version"] and card["trained"]["date"].startswith("20")
    assert card["trunk"]["source"] == "imagenet" and not (out / "trunk.keras").exists()

    split = json.loads((out / "split.json").read_text())
    everything = split["train"] + split["val"] + split["test"]
    assert len(everything) == len(set(everything)) == 24 and "photo/broken.jpg" not in everything
    assert card["split"]["counts"] == {"train": 12, "val": 4, "test": 8} and split["seed"] == 1
    for name in ("train", "val", "test"):  # stratified: both classes in every part
        assert {p.split("/")[0] for p in split[name]} == {"document", "photo"}

    history = json.loads((out / "history.json").read_text())
    assert [p["name"] for p in history["phases"]] == ["categorizer"]  # head mode: no epochs, no curves
    assert card["categorizer"]["file"] == "categorizer.npz" and (out / "categorizer.npz").is_file()
    assert card["categorizer"]["temperature"] > 0 and card["categorizer"]["gate"]["min_energy"] is not None
    assert "'other' class" not in card["categorizer"]["name"]  # no negatives given: the gate alone
    assert not (out / "head.keras").exists() and not (out / "training_curves.png").exists()
    with Image.open(out / "confusion_matrix_test.png") as image:
        assert image.format == "PNG" and image.width > 300

    test = card["metrics"]["test"]
    assert test["samples"] == 8
    assert test["accuracy"] >= 0.75  # chance is 0.5; documents and photos are far apart
    assert "test_accuracy" in proc.stdout


def test_card_figures_are_what_the_saved_model_predicts(trained, dataset, weights_file):
    from indexer.engines.load import load_embedder
    from indexer.loader import load_image

    out, _ = trained
    card = json.loads((out / "model_card.json").read_text())
    split = json.loads((out / "split.json").read_text())
    embedder = load_embedder(weights_file, str(out))
    assert embedder.model_id == card["model_id"]
    pixels = np.stack([load_image(dataset / p)[0] for p in split["test"]])
    predicted = np.argmax(embedder.embed(pixels).category_probs, axis=1)
    truth = [card["classes"].index(p.split("/")[0]) for p in split["test"]]
    assert float(np.mean(predicted == truth)) == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)


def test_evaluate_on_training_data_uses_the_test_split_only(trained, dataset, module_env):
    out, _ = trained
    proc = run_cbir(["evaluate", str(dataset), "--model", str(out), "--json"], module_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    card = json.loads((out / "model_card.json").read_text())
    assert report["classification"]["samples"] == 8
    assert report["classification"]["accuracy"] == card["metrics"]["test"]["accuracy"]
    assert "recorded test split" in report["classification_scope"]
    assert any("trained this model" in note for note in report["notes"])
    assert report["retrieval"]["queries"] == 24 and report["retrieval"]["top1"] >= 0.75
    assert [s["reason"] for s in report["skipped"]] == ["corrupt image"]


def test_evaluate_on_new_data_classifies_everything_and_prints_a_table(trained, workspace, photos, module_env):
    out, _ = trained
    fresh = make_two_class_dataset(workspace / "fresh", photos, per_class=6, seed=99)
    plot = workspace / "confusion.png"
    proc = run_cbir(["evaluate", str(fresh), "--model", str(out), "--plot", str(plot)], module_env)
    assert proc.returncode == 0, proc.stderr
    assert "classification (all 12 images of known classes)" in proc.stdout
    for needle in ("precision", "macro avg", "weighted avg", "confusion matrix", "top-1", "top-10", "mAP@10"):
        assert needle in proc.stdout
    accuracy = float(next(line for line in proc.stdout.splitlines() if line.startswith("accuracy")).split()[1])
    assert accuracy >= 0.75
    assert plot.is_file() and plot.stat().st_size > 1000


def test_index_stores_categories_and_refuses_another_model(trained, workspace, photos, module_env):
    out, _ = trained
    folder = workspace / "to-index"
    make_two_class_dataset(folder, photos, per_class=3, seed=5)
    index = str(workspace / "index")
    proc = run_cbir(["index", str(folder), "--index", index, "--model", str(out)], module_env)
    assert proc.returncode == 0, proc.stderr

    # The index remembers its model: a query without --model uses it and carries categories.
    query = folder / "document" / "doc_00.png"
    proc = run_cbir(["query", str(query), "--index", index, "-k", "6", "--json"], module_env)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits[0]["path"] == str(query) and hits[0]["category"] in ("document", "photo")
    assert set(hits[0]["category_probs"]) == {"document", "photo", "other"}
    assert sum(abs(sum(h["category_probs"].values()) - 1) < 1e-3 for h in hits) == len(hits)
    right = sum(h["category"] == ("document" if "/document/" in h["path"] else "photo") for h in hits)
    assert right >= 5

    status = run_cbir(["status", "--index", index, "--json"], module_env)
    info = json.loads(status.stdout)
    assert info["model"] == str(out) and sum(info["categories"].values()) == 6

    # Another head on the same trunk shares the vectors: a query with plain ImageNet features works.
    proc = run_cbir(["query", str(query), "--index", index, "--model", "imagenet", "-k", "1"], module_env)
    assert proc.returncode == 0 and proc.stdout.startswith("1.0000\t"), proc.stderr


def test_train_refuses_bad_requests_with_one_line(trained, workspace, photos, module_env):
    out, _ = trained
    one_class = workspace / "one-class"
    for i in range(6):
        save_photo(photos["coffee"], one_class / "food" / f"{i}.jpg")
    cases = [
        (["train", str(workspace / "data"), "--out", str(out)], "not empty"),
        (["train", str(one_class), "--out", str(workspace / "x")], "at least two classes"),
        (["evaluate", str(workspace / "data"), "--model", str(workspace / "nowhere")], "does not exist"),
    ]
    for args, message in cases:
        proc = run_cbir(args, module_env)
        assert proc.returncode in (2, 9), proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (workspace / "x").exists()


def test_fine_tune_top_saves_a_trunk_that_the_rest_of_cbir_loads(workspace, dataset, weights_file):
    from indexer.engines.load import load_embedder
    from training.trainer import TrainOptions, train

    out = workspace / "model-top"
    result = train(TrainOptions(dataset, out, fine_tune="top", epochs=1, head_epochs=20, augment_copies=0,
                                val_fraction=0.2, test_fraction=0.3, weights=str(weights_file)))
    card = result.card
    assert card["trunk"]["file"] == "trunk.keras" and (out / "trunk.keras").stat().st_size > 50e6
    assert [p["name"] for p in card["fine_tune"]["phases"]] == ["head (for fine-tuning)", "fine-tune top",
                                                                "categorizer"]
    assert card["fine_tune"]["phases"][1]["epochs"] == 1
    embedder = load_embedder(None, str(out))
    assert embedder.model_id.startswith("resnet50-ft-") and embedder.model_id == card["model_id"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["phases"]) == 3 and (out / "training_curves.png").is_file()
    shutil.rmtree(out)  # 90 MB
