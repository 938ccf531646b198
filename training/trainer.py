"""`cbir train`: check the data, split it, fine-tune, measure on the test split, write the model folder.

Phase one always trains the category head on frozen-trunk features computed
once (seconds on a CPU). `top` and `all` then unfreeze the last stage or the
whole ResNet-50 and train end to end on augmented images with a lower
learning rate. The model folder is assembled beside its destination and
renamed into place, so an interrupted run never leaves a half-written model.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir import __version__
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.errors import UsageError
from indexer.categorizer import OTHER
from indexer.embedder import weights_digest
from indexer.engines.keras_engine import KerasEmbedder
from indexer.model import CARD_FILE, CARD_FORMAT, CARD_FORMAT_VERSION, CATEGORIZER_FILE, TRUNK_FILE, ModelRef
from indexer.resnet import EMBEDDING_DIM, INPUT_SIZE
from indexer.tags import load_classifier
from indexer.weights import ensure_weights
from training.augment import build_augmenter
from training.classification_metrics import classification_report
from training.data_check import DatasetCheck, check_dataset
from training.features import extract_features
from training.finetune import DEFAULT_LEARNING_RATE, FINE_TUNE_MODES, STEP_COST, fine_tune
from training.head import OTHER_WEIGHT, build_head, fit_categorizer, fit_head
from training.keras_progress import fit_progress
from training.open_set_metrics import open_set_report
from training.plots import plot_confusion, plot_curves
from training.progress import ProgressFactory, no_progress
from training.split import SPLIT_FILE, Split, stratified_split

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix_test.png"
PREPROCESSING = (
    "decode (JPEG draft mode), EXIF orientation, RGB (alpha on white), resize to 224x224 (bilinear), "
    "then Caffe style: RGB->BGR, subtract mean [103.939, 116.779, 123.68], no scaling"
)
AUGMENTATION = "horizontal flip, rotation up to 11 degrees, zoom +-15%, brightness +-15% (training split only)"


@dataclass
class TrainOptions:
    data_dir: Path
    out_dir: Path
    fine_tune: str = "head"
    epochs: int | None = None  # end-to-end epochs for top/all
    head_epochs: int = 200
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    batch_size: int = 32
    fine_tune_batch_size: int = 16
    min_per_class: int = 5
    augment_copies: int = 2
    learning_rate: float | None = None
    patience: int | None = None
    name: str | None = None
    notes: list[str] = field(default_factory=list)
    weights: str | None = None
    other: list[Path] = field(default_factory=list)  # folders of photos of none of the classes (negatives)
    scene: bool = True  # the head also reads ImageNet's class scores (--fine-tune head only)
    progress: ProgressFactory = no_progress  # the CLI passes one that draws bars on stderr


@dataclass
class TrainResult:
    out_dir: Path
    card: dict
    seconds: float


def train(options: TrainOptions) -> TrainResult:

    if options.fine_tune not in FINE_TUNE_MODES:
        raise UsageError(f"--fine-tune must be one of {', '.join(FINE_TUNE_MODES)}")
    out_dir = Path(options.out_dir).expanduser().resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir} already exists and is not empty; choose a new --out folder")
    started = time.perf_counter()

    bar = options.progress("checking images", None, "img")
    try:
        data = check_dataset(options.data_dir, other=list(options.other), min_per_class=options.min_per_class,
                             on_progress=bar.update)
    finally:
        bar.close()
    _report_data(data, options.min_per_class)
    split = stratified_split([i.relpath for i in data.images], [i.label for i in data.images],
                             val_fraction=options.val_fraction, test_fraction=options.test_fraction,
                             seed=options.seed)
    split.hashes = {i.relpath: i.digest for i in data.images}
    log.info("split (seed %d): %s", split.seed, ", ".join(f"{k} {v}" for k, v in split.counts().items()))

    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)  # only ever our own leftover from this pid
    staging.mkdir(parents=True)
    try:
        card = _train_into(staging, data, split, options, started)
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TrainResult(out_dir, card, time.perf_counter() - started)


def _report_data(data: DatasetCheck, min_per_class: int) -> None:
    for path, reason in data.problems:
        log.warning("left out %s: %s", path, reason)
    for name, problem in data.ignored_folders:
        log.warning("left out folder %r: it cannot be a class (%s)", name, problem)
    for label, n in data.too_small.items():
        log.warning("left out class %r: %d readable images, fewer than %d", label, n, min_per_class)
    log.info("%d images in %d classes: %s", len(data.images), len(data.classes),
             ", ".join(f"{c} {n}" for c, n in data.counts.items()))
    if not data.has_other:
        log.info("no photos of none of the classes (--other DIR, or a class folder named 'other'): "
                 "'other' is learned from the classes' own photos alone (less reliable)")


def _train_into(staging: Path, data: DatasetCheck, split: Split, options: TrainOptions, started: float) -> dict:
    import keras


    keras.utils.set_random_seed(options.seed)
    classes = data.classes
    head_classes = [*classes, OTHER] if data.has_other else list(classes)
    class_index = {c: i for i, c in enumerate(head_classes)}
    idx = split.indices([i.relpath for i in data.images])
    labels = np.asarray([class_index[i.label] for i in data.images])
    class_weight = _balanced_weights(labels[idx["train"]], len(head_classes))
    if data.has_other:
        class_weight[class_index[OTHER]] *= OTHER_WEIGHT
    embedder = KerasEmbedder(ensure_weights(options.weights))
    augmenter = build_augmenter(options.seed)
    train_f, val_f, rate = _features(embedder, data, idx, class_index, augmenter, options, "frozen ResNet-50")

    phases: list[dict] = []
    mode = options.fine_tune
    if mode != "head":
        # A Keras head to fine-tune the network against, warm-started on the cached features.
        head = build_head(len(head_classes))
        lr_head = 1e-3
        steps = -(-len(train_f.vectors) // options.batch_size)
        bar = options.progress("head", steps * options.head_epochs, "step")
        head_history = fit_head(head, train_f.vectors, train_f.labels, val_f.vectors, val_f.labels,
                                class_weight=class_weight, epochs=options.head_epochs,
                                patience=options.patience or 20, learning_rate=lr_head,
                                batch_size=options.batch_size, callbacks=[fit_progress(bar)])
        phases.append(_phase("head (for fine-tuning)", head_history, lr_head,
                             frozen="whole ResNet-50 (features computed once)"))
        epochs = options.epochs or 10
        lr = options.learning_rate or DEFAULT_LEARNING_RATE[mode]
        per_epoch = (len(idx["train"]) * STEP_COST[mode] + len(idx["val"])) / rate
        log.info("fine-tuning (%s) for up to %d epochs, about %s per epoch on this machine, %s at most",
                 mode, epochs, _duration(per_epoch), _duration(per_epoch * epochs))
        steps = -(-len(idx["train"]) // options.fine_tune_batch_size)
        bar = options.progress(f"fine-tune {mode}", steps * epochs, "step")
        history = fine_tune(embedder.trunk, head, data, idx["train"], labels[idx["train"]], idx["val"],
                            labels[idx["val"]], mode=mode, class_weight=class_weight, augmenter=augmenter,
                            epochs=epochs, learning_rate=lr, patience=options.patience or 3,
                            batch_size=options.fine_tune_batch_size, seed=options.seed,
                            callbacks=[fit_progress(bar)])
        frozen = "BatchNormalization layers" + ("" if mode == "all" else " and stages 1-4")
        phases.append(_phase(f"fine-tune {mode}", history, lr, frozen=frozen))
        # The categorizer is fitted on what the fine-tuned network computes.
        train_f, val_f, _ = _features(embedder, data, idx, class_index, augmenter, options, "fine-tuned ResNet-50")

    # ImageNet's class scores are only the scene on the trunk ImageNet's classifier was trained with.
    weights = embedder.weights
    scene = load_classifier(weights.path) if mode == "head" and options.scene and weights is not None else None
    categorizer = fit_categorizer(train_f.vectors, [head_classes[i] for i in train_f.labels], val_f.vectors,
                                  [head_classes[i] for i in val_f.labels], classes, scene=scene)
    log.info("categorizer: %s; temperature %.3f%s", categorizer.method["name"], categorizer.temperature,
             f", energy gate {categorizer.min_energy:.3f}" if categorizer.min_energy is not None else "")
    phases.append({"name": "categorizer", "method": categorizer.method["name"],
                   "frozen": "the whole network (features computed once)"})
    categorizer.save(staging / CATEGORIZER_FILE)
    if mode == "head":
        trunk = {"source": "imagenet", "id": embedder.trunk_id,
                 "note": "ImageNet ResNet-50 weights, unchanged; cbir provisions them (see README)"}
    else:
        embedder.trunk.save(staging / TRUNK_FILE)  # never compiled itself: no optimizer state
        trunk = {"file": TRUNK_FILE, "id": "resnet50-ft-" + weights_digest(embedder.trunk)[:16],
                 "note": f"ResNet-50 fine-tuned ({mode}) from ImageNet weights {embedder.trunk_id}"}
    split.save(staging)
    (staging / HISTORY_FILE).write_text(json.dumps({"phases": phases}, indent=1) + "\n")
    if any("history" in phase for phase in phases):
        plot_curves([phase for phase in phases if "history" in phase], staging / CURVES_FILE)
    card = _card(options, data, split, classes, trunk, phases, class_weight, head_classes, scene is not None)
    card["categorizer"] = {"file": CATEGORIZER_FILE, **categorizer.method}
    _write_card(staging, card)

    # Measure what was saved, loaded back the way every other command loads it.
    final = KerasEmbedder(embedder.weights, ModelRef(str(staging), staging, card))
    card["metrics"] = {"test": _test_metrics(final, data, idx["test"], staging)}
    card["model_id"] = final.model_id
    card["trained"]["seconds"] = round(time.perf_counter() - started, 1)
    _write_card(staging, card)
    return card


def _features(embedder, data: DatasetCheck, idx: dict[str, list[int]], class_index: dict[str, int], augmenter,
              options: TrainOptions, what: str):
    """Features of the training split (plus augmented copies) and of the validation split, and the rate."""

    copies = options.augment_copies
    passes = len(idx["train"]) * (1 + copies) + len(idx["val"])
    log.info("computing %s features: %d passes (%d training images x %d, %d validation), about %s", what,
             passes, len(idx["train"]), 1 + copies, len(idx["val"]), _duration(passes / _measure_rate(embedder, data)))
    bar = options.progress("features", passes, "img")
    try:
        train_f = extract_features(embedder, data, idx["train"], class_index, copies=copies,
                                   augmenter=augmenter, batch_size=options.batch_size, on_progress=bar.update)
        val_f = extract_features(embedder, data, idx["val"], class_index, batch_size=options.batch_size,
                                 on_progress=bar.update)
    finally:
        bar.close()
    rate = (len(train_f.vectors) + len(val_f.vectors)) / max(train_f.seconds + val_f.seconds, 1e-9)
    log.info("features at %.1f images/s", rate)
    return train_f, val_f, rate


def _test_metrics(embedder, data: DatasetCheck, test_idx: list[int], staging: Path) -> dict:
    """Classification over the categories and "other", and the open-set figures, on the test split."""

    if not test_idx:
        return {"note": "no test split (--test-fraction 0)"}
    outputs = embedder.categorizer.outputs
    probs = np.concatenate([embedder.embed(data.load_pixels(test_idx[start : start + 32])).category_probs
                            for start in range(0, len(test_idx), 32)])
    predicted = [outputs[int(i)] for i in np.argmax(probs, axis=1)]
    truth = [data.images[i].label for i in test_idx]
    report = classification_report(truth, predicted, outputs)
    plot_confusion(outputs, report.confusion, staging / CONFUSION_FILE, f"test split ({len(truth)} images)")
    log.info("test split: accuracy %.3f, macro F1 %.3f over %d images", report.accuracy, report.macro["f1"],
             len(truth))
    result = report.as_dict()
    known = [i for i, t in enumerate(truth) if t != OTHER]
    if len(known) < len(truth):  # photos of none of the categories were held out too
        in_distribution = classification_report([truth[i] for i in known], [predicted[i] for i in known],
                                                outputs)
        result["categories_only"] = {"samples": len(known), "accuracy": round(in_distribution.accuracy, 4),
                                     "macro_f1": round(float(np.mean([in_distribution.per_class[c]["f1"]
                                                                      for c in data.classes])), 4)}
    result["open_set"] = open_set_report(truth, probs, outputs, DEFAULT_MIN_CONFIDENCE).as_dict()
    return result


def _card(options: TrainOptions, data: DatasetCheck, split: Split, classes: list[str], trunk: dict,
          phases: list[dict], class_weight: dict[int, float], head_classes: list[str], scene: bool) -> dict:
    import keras
    import tensorflow as tf

    return {
        "format": CARD_FORMAT,
        "format_version": CARD_FORMAT_VERSION,
        "name": options.name or Path(options.out_dir).name,
        "classes": classes,
        "architecture": "ResNet-50 (keras.applications) -> global average pooling (2048-d, the retrieval "
                        "embedding) -> categorizer (L2 normalisation" + (
                            ", beside ImageNet's 1000 class log-probabilities from the same features"
                            if scene else "") + ", x16, multinomial logistic regression over "
                        "the classes" + (" and 'other'" if OTHER in head_classes else "") + ", temperature, "
                        "energy gate; see indexer/categorizer.py)",
        "input": {"size": [INPUT_SIZE, INPUT_SIZE, 3], "preprocessing": PREPROCESSING},
        "embedding": {"dim": EMBEDDING_DIM, "layer": "avg_pool", "normalised": "L2"},
        "trunk": trunk,
        "fine_tune": {
            "mode": options.fine_tune,
            "phases": [{k: v for k, v in p.items() if k != "history"} for p in phases],
            "augmentation": AUGMENTATION,
            "augmented_copies_for_head": options.augment_copies,
            "class_weight": {c: round(class_weight[i], 4) for i, c in enumerate(head_classes)},
            "seed": options.seed,
        },
        "data": data.summary(),
        "split": {**{k: v for k, v in split.as_dict().items() if k not in ("train", "val", "test", "hashes")},
                  "counts": split.counts(), "file": SPLIT_FILE},
        "metrics": {},
        "trained": {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cbir_version": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        },
        "notes": list(options.notes),
    }


def _write_card(directory: Path, card: dict) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


def _phase(name: str, history: dict[str, list[float]], lr: float, frozen: str) -> dict:
    monitor = history.get("val_loss") or history.get("loss") or [0.0]
    return {"name": name, "epochs": len(history.get("loss", [])), "best_epoch": int(np.argmin(monitor)) + 1,
            "learning_rate": lr, "frozen": frozen, "history": history}


def _measure_rate(embedder, data: DatasetCheck, n: int = 8) -> float:
    """Images/s of the frozen trunk here, timed on a second small batch (the first one warms up)."""
    pixels = data.load_pixels(list(range(min(n, len(data.images)))))
    embedder.embed(pixels)
    started = time.perf_counter()
    embedder.embed(pixels)
    return len(pixels) / max(time.perf_counter() - started, 1e-6)


def _balanced_weights(train_labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """n / (classes * count): each class weighs the same in the loss however many images it has."""
    counts = np.bincount(train_labels, minlength=n_classes).astype(float)
    return {i: float(len(train_labels) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
