"""Open-world categories: "other", calibrated probabilities, new heads without re-embedding, honest queries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cbir, save_photo
from tests.datasets import crop_photo, render_document


def _index(root: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    proc = run_cbir(["index", str(root), "-q", "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return proc


# -- figures -------------------------------------------------------------------------------------------

def test_open_set_figures_match_a_hand_computation():
    from training.open_set_metrics import open_set_report

    outputs = ["cat", "dog", "other"]
    truth = ["cat", "cat", "dog", "other", "other"]
    probs = np.array([
        [0.9, 0.05, 0.05],  # cat, moved (right)
        [0.6, 0.1, 0.3],  # cat but below 0.7: stays
        [0.8, 0.1, 0.1],  # a dog moved as cat (wrong)
        [0.1, 0.1, 0.8],  # other, stays
        [0.05, 0.75, 0.2],  # other moved as dog (wrong)
    ])
    r = open_set_report(truth, probs, outputs, 0.7)
    assert r.moved["cat"] == {"precision": 0.5, "recall": 0.5, "moved": 2, "support": 2}
    assert r.moved["dog"] == {"precision": 0.0, "recall": 0.0, "moved": 1, "support": 1}
    assert r.other_moved == 0.5
    # 1 - p(other): known 0.95, 0.7, 0.9 against others 0.2, 0.8 -> 5 of 6 pairs ordered right
    assert r.auroc == pytest.approx(5 / 6)
    # the 5% quantile of the known scores (0.72) lets one of the two others through
    assert r.fpr_at_95_tpr == 0.5
    # Right answers: rows 0, 1 and 3. Bins: (0.5, 0.6] holds 0.6 (right); (0.7, 0.8] holds 0.8 (wrong),
    # 0.8 (right) and 0.75 (wrong); (0.8, 0.9] holds 0.9 (right).
    expected_ece = 0.2 * abs(0.6 - 1) + 0.6 * abs((0.8 + 0.8 + 0.75) / 3 - 1 / 3) + 0.2 * abs(0.9 - 1)
    assert r.ece == pytest.approx(expected_ece) and r.ece == pytest.approx(0.37)
    assert [b["count"] for b in r.reliability] == [1, 3, 1]


# -- the default model in an index ---------------------------------------------------------------------

def test_clean_leaves_photos_of_no_category_in_place_and_says_so(photo_tree, cli_env):
    _index(photo_tree, cli_env)
    status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
    others = status["categories"].get("other", 0)
    assert others >= 4  # the cat, the espresso, the rocket, the coins, the flower, the moon: none of the five
    proc = run_cbir(["clean", "--category", "all", "--min-confidence", "0", "--yes", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    moved = {Path(m["path"]).name for m in result["moves"]}
    assert result["left_in_place"]["no_category"] == others
    assert {"chelsea.jpg", "coffee.jpg", "rocket.gif"}.isdisjoint(moved)
    assert (photo_tree / "chelsea.jpg").is_file() and (photo_tree / "rocket.gif").is_file()
    assert f"{others} left in place as belonging to no category" in proc.stderr
    hits = json.loads(run_cbir(["query", str(photo_tree / "chelsea.jpg"), "-k", "1", "--json"], cli_env).stdout)
    probs = hits[0]["category_probs"]
    assert hits[0]["category"] == "other" and set(probs) == {"food", "landscape", "people", "receipt",
                                                             "screenshot", "other"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)


def test_a_query_says_when_nothing_in_the_index_is_similar(photo_tree, cli_env, tmp_path):
    _index(photo_tree, cli_env)
    own = run_cbir(["query", str(photo_tree / "astronaut.jpg"), "-k", "3", "--json"], cli_env)
    hits = json.loads(own.stdout)
    assert hits[0]["is_query"] and hits[0]["judgement"] == "match"
    assert all(h["judgement"] in ("match", "related", "unrelated") for h in hits)
    page = tmp_path / "scan.png"
    render_document(np.random.default_rng(5)).save(page)
    proc = run_cbir(["query", str(page), "-k", "3"], cli_env)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3  # the list is still printed
    note = next(line for line in proc.stderr.splitlines() if "no close match" in line)
    best = float(proc.stdout.splitlines()[0].split("\t")[0])
    assert note == (f"cbir: no close match in the index: best score {best:.2f}; similar photos usually score "
                    "above 0.55")


# -- a new head on the same trunk: categories recomputed, nothing embedded --------------------------

def _other_head(tmp_path: Path) -> Path:
    """A model on the ImageNet trunk with other categories: 'document' and 'scene' (and other)."""
    from indexer.categorizer import Categorizer
    from indexer.model import default_model_dir, resolve_model

    default = resolve_model("default").categorizer()
    cols = [default.head_classes.index(c) for c in ("receipt", "landscape", "other")]
    model = tmp_path / "scenes-and-documents"
    model.mkdir()
    card = json.loads((default_model_dir() / "model_card.json").read_text())
    card.update(name="scenes-and-documents", classes=["document", "scene"])
    card["metrics"] = {}
    (model / "model_card.json").write_text(json.dumps(card))
    Categorizer(["document", "scene"], default.weights[:, cols], default.bias[cols], ["document", "scene", "other"],
                default.scale, default.temperature, None, scene=default.scene).save(model / "categorizer.npz")
    return model


def test_a_new_head_recategorizes_the_index_without_embedding_anything(photo_tree, cli_env, tmp_path):
    _index(photo_tree, cli_env)
    model = _other_head(tmp_path)
    proc = run_cbir(["index", str(photo_tree), "--json", "--model", str(model)], cli_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["added"] == summary["updated"] == 0 and summary["unchanged"] == 10
    assert "recomputed the categories of 10 images from their stored vectors" in proc.stderr
    status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
    assert status["model"] == str(model) and set(status["categories"]) <= {"document", "scene", "other"}
    assert status["categories"].get("document", 0) >= 1  # the scanned page
    # clean with the index's model; the default model again recategorizes (same trunk), never refuses
    back = run_cbir(["clean", "--category", "people", "--model", "default"], cli_env)
    assert back.returncode == 0, back.stderr
    assert json.loads(run_cbir(["status", "--json"], cli_env).stdout)["categories"].get("people", 0) >= 1


def test_recategorizing_calls_the_network_zero_times(photo_tree, cli_env, tmp_path, monkeypatch, weights_file):
    from cbir.session import open_store, recategorize
    from indexer.engines.load import load_embedder
    from indexer.model import resolve_model
    from indexer.pipeline import IndexRun

    _index(photo_tree, cli_env)
    embedder = load_embedder(weights_file, resolve_model(str(_other_head(tmp_path))))
    calls = []
    real_embed = embedder.embed
    monkeypatch.setattr(embedder, "embed", lambda batch: calls.append(len(batch)) or real_embed(batch))
    index_dir = Path(cli_env["CBIR_HOME"]) / "index"
    with open_store(index_dir, lambda status: (embedder.model_id, embedder.dim, embedder.model.ref)) as store:
        assert store.categories_from is not None  # another head, same trunk
        assert recategorize(store, embedder.categorize, embedder.model_id, embedder.model.ref) == 10
        # The category tags follow at once; the ImageNet tags stay.
        tags = {t for tags in store.tags_of(list(range(1, 11))).values() for t, _ in tags}
        assert {t for t in tags if t.startswith("category:")} <= {"category:document", "category:scene",
                                                                 "category:other"}
        assert "n02121620" in tags  # the cat is still a cat
        summary = IndexRun(store, embedder).run([str(photo_tree)])
        cats = {row.category for row in store.rows_with_categories(["document", "scene", "other"])}
    assert calls == [] and summary.unchanged == 10 and cats <= {"document", "scene", "other"} and len(cats) >= 2


def test_a_model_on_another_trunk_is_refused(photo_tree, cli_env, tmp_path):
    """Vectors of two networks are not comparable: a fine-tuned trunk never joins an ImageNet index."""
    import keras

    _index(photo_tree, cli_env)
    model = _other_head(tmp_path)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=8)(inputs))
    keras.Model(inputs, keras.layers.Dense(2048)(x)).save(model / "trunk.keras")
    card = json.loads((model / "model_card.json").read_text())
    card["trunk"] = {"file": "trunk.keras", "id": "resnet50-ft-0000"}
    (model / "model_card.json").write_text(json.dumps(card))
    def state():
        status = json.loads(run_cbir(["status", "--json"], cli_env).stdout)
        return {k: status[k] for k in ("images", "model", "model_id", "categories")}

    before = state()
    for args in (["index", str(photo_tree), "--model", str(model), "--runtime", "keras"],
                 ["clean", "--category", "scene", "--model", str(model), "--runtime", "keras"]):
        proc = run_cbir(args, cli_env)
        assert proc.returncode == 7, proc.stderr
        assert "cannot be mixed" in proc.stderr and "Traceback" not in proc.stderr
    assert state() == before


# -- training with and without negatives --------------------------------------------------------------

@pytest.fixture(scope="module")
def open_world(tmp_path_factory, photos):
    """Two narrow classes (printed pages, portraits), negatives (objects), and photos unlike all of them."""
    root = tmp_path_factory.mktemp("open-world")
    rng = np.random.default_rng(2)
    data, negatives, unlike = root / "data", root / "negatives", root / "unlike"
    for i in range(10):
        render_document(rng).save(_mk(data / "document") / f"doc_{i}.png")
        crop_photo(photos["astronaut" if i % 2 else "camera"], rng).save(_mk(data / "portrait") / f"p_{i}.jpg")
    for i, name in enumerate(["coffee", "rocket", "coins", "flower"] * 3):
        crop_photo(photos[name], rng).save(_mk(negatives / name) / f"{name}_{i}.jpg")
    for name in ("chelsea", "china", "moon"):  # never in training, none of the classes
        save_photo(photos[name], unlike / f"{name}.jpg")
    return root


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("negatives", [True, False], ids=["with-other", "without-other"])
def test_a_small_trained_model_rejects_photos_unlike_its_classes(open_world, weights_file, negatives, tmp_path):
    from indexer.engines.load import load_embedder
    from indexer.loader import load_image
    from indexer.model import resolve_model
    from training.trainer import TrainOptions, train

    result = train(TrainOptions(open_world / "data", tmp_path / "model", augment_copies=1, seed=1,
                                val_fraction=0.3, test_fraction=0.2, weights=str(weights_file),
                                other=[open_world / "negatives"] if negatives else []))
    card = result.card
    categorizer = resolve_model(str(result.out_dir)).categorizer()
    assert categorizer.outputs == ["document", "portrait", "other"] and categorizer.min_energy is not None
    assert ("'other' class" in card["categorizer"]["name"]) is negatives
    embedder = load_embedder(weights_file, resolve_model(str(result.out_dir)), runtime="keras")
    unlike = sorted((open_world / "unlike").iterdir())
    got = embedder.categories(embedder.embed(np.stack([load_image(p)[0] for p in unlike])).category_probs)
    judged_other = sum(category == "other" for category, _ in got)
    assert judged_other >= (3 if negatives else 2), got
    fresh = np.stack([np.asarray(render_document(np.random.default_rng(99)).resize((224, 224)))])
    assert embedder.categories(embedder.embed(fresh).category_probs)[0][0] == "document"


@pytest.mark.slow
def test_evaluate_reports_open_set_figures(open_world, weights_file, tmp_path, cli_env):
    # The default model's own category names: printed pages are "receipt", portraits "people".
    shutil.copytree(open_world / "data" / "document", tmp_path / "eval" / "receipt")
    shutil.copytree(open_world / "data" / "portrait", tmp_path / "eval" / "people")
    proc = run_cbir(["evaluate", str(tmp_path / "eval"), "--other", str(open_world / "unlike"), "--json",
                     "--plot", str(tmp_path / "confusion.png"), "--no-retrieval"], cli_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    o = report["open_set"]
    assert o["other_images"] == 3 and o["known_images"] == 20 and 0 <= o["other_moved"] <= 1
    assert report["classification"]["confusion_matrix"]["labels"][-1] == "other"
    assert "closed-set" not in " ".join(report["notes"])  # the default model has "other"
    png = (tmp_path / "confusion-reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_holds_out_every_source_and_draws_precision_recall(open_world, weights_file, tmp_path, cli_env):
    data, unlike = tmp_path / "eval", tmp_path / "unlike"
    shutil.copytree(open_world / "data" / "document", data / "receipt")
    shutil.copytree(open_world / "data" / "portrait", data / "people")
    shutil.copytree(open_world / "unlike", unlike)
    rows = [f"{p.parent.name}/{p.name},{'press' if i % 2 else 'archive'}"
            for i, p in enumerate(sorted(data.glob("*/*")))]
    (data / "manifest.csv").write_text("path,source\n" + "\n".join(rows) + "\n")
    args = ["evaluate", str(data), "--other", str(unlike), "--group-by", "source", "--no-retrieval"]

    proc = run_cbir(args, cli_env)  # the other folder has no manifest: said before anything is embedded
    assert proc.returncode == 2 and "manifest.csv" in proc.stderr and "Traceback" not in proc.stderr

    (unlike / "manifest.csv").write_text("path,source\n" + "".join(f"{p.name},web\n" for p in unlike.glob("*.jpg")))
    proc = run_cbir([*args, "--json", "--plot", str(tmp_path / "confusion.png")], cli_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    held = report["held_out_sources"]
    assert [row["source"] for row in held["per_source"]] == ["archive", "press", "web"]
    assert sum(row["photos"] for row in held["per_source"]) == 23
    assert held["per_source"][2]["recall"] is None and held["per_source"][2]["classes"] == {"other": 3}
    # The default model's other categories have no photo here: not in the macro average, said so.
    for classification in (report["classification"], held["classification"]):
        assert classification["absent_classes"] == ["food", "landscape", "screenshot"]
        assert classification["macro_avg_over"] == ["people", "receipt", "other"]
    assert set(report["precision_recall"]) == {"food", "landscape", "people", "receipt", "screenshot"}
    receipt = {p["threshold"]: p for p in held["precision_recall"]["receipt"]}
    assert receipt[0.7]["recall"] == held["at_threshold"]["moved"]["receipt"]["recall"]
    png = (tmp_path / "confusion-precision-recall.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
