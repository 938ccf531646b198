"""The category head: pooled ResNet-50 features in, class probabilities out.

Features are L2-normalised inside the head and scaled by a fixed factor (a
cosine classifier), so the head is the same whether it is fed raw pooled
features (end-to-end fine-tuning) or the unit-length retrieval embedding.
"""

from __future__ import annotations

import numpy as np

from indexer.categorizer import OTHER, Categorizer, head_features
from indexer.resnet import EMBEDDING_DIM

COSINE_SCALE = 16.0


def build_head(n_classes: int, dropout: float = 0.2):
    import keras

    features = keras.Input((EMBEDDING_DIM,), name="features")
    x = keras.layers.UnitNormalization(name="unit_norm")(features)
    x = keras.layers.Rescaling(COSINE_SCALE, name="cosine_scale")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="categories")(x)
    return keras.Model(features, probs, name="category_head")


def fit_head(
    head,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    class_weight: dict[int, float],
    epochs: int = 200,
    patience: int = 20,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    callbacks: list | None = None,
) -> dict[str, list[float]]:
    """Train on cached features; early stopping keeps the best epoch's weights."""
    import keras

    has_val = len(val_x) > 0
    monitor = "val_loss" if has_val else "loss"
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    history = head.fit(
        train_x, train_y,
        validation_data=(val_x, val_y) if has_val else None,
        epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, class_weight=class_weight,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.3, patience=max(2, patience // 3),
                                              min_lr=1e-6),
            *(callbacks or []),
        ],
    )
    return _plain(history.history)


def _plain(history: dict) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in history.items()}


# How the categorizer is made (chosen by benchmarks/open_set.py and benchmarks/category_sources.py
# on the development data): a multinomial logistic regression on the cosine-scaled features (with
# the scene block on the ImageNet trunk: indexer.categorizer.head_features), classes balanced, the
# "other" class weighing half its balanced share (so one broad negative class does not crowd
# out thin categories), L2 strength C; then a temperature fitted on the validation split, and
# an energy gate set so that this share of the validation photos of the categories pass it.
# 0.93 with "other": on sources held out of training, 0.97 moved 2.9% of the photos of none of
# the categories and the wrong photos a clean moved cost more precision than the gate saves recall.
LOGISTIC_C = 0.3
OTHER_WEIGHT = 0.5
GATE_TPR_WITH_OTHER = 0.93
GATE_TPR_WITHOUT_OTHER = 0.95


def fit_categorizer(train_x: np.ndarray, train_y: list[str], val_x: np.ndarray, val_y: list[str],
                    classes: list[str], *, c: float = LOGISTIC_C, other_weight: float = OTHER_WEIGHT,
                    scene: tuple[np.ndarray, np.ndarray] | None = None):
    """A calibrated open-set categorizer from frozen unit features; labels are class names or "other".
    ``scene``, the ImageNet classifier (kernel, bias), makes a head that reads ImageNet's scores too."""
    from sklearn.linear_model import LogisticRegression


    labels = np.asarray(train_y)
    head_classes = [*classes, OTHER] if OTHER in set(train_y) else list(classes)
    counts = {name: int(np.sum(labels == name)) for name in head_classes}
    weights = {name: len(labels) / (len(head_classes) * n) for name, n in counts.items() if n}
    if OTHER in weights:
        weights[OTHER] *= other_weight
    model = LogisticRegression(C=c, max_iter=5000, class_weight=weights)
    model.fit(head_features(train_x, scene) * COSINE_SCALE, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # a binary fit keeps one logit; as two, softmax gives the same sigmoid
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    order = [list(model.classes_).index(name) for name in head_classes]
    categorizer = Categorizer(list(classes), coef[order].T.astype(np.float32),
                              intercept[order].astype(np.float32), head_classes, COSINE_SCALE, scene=scene)
    val_y_arr = np.asarray(val_y)
    known_val = np.isin(val_y_arr, classes)
    tpr = GATE_TPR_WITH_OTHER if OTHER in head_classes else GATE_TPR_WITHOUT_OTHER
    if len(val_x) and known_val.any():
        logits = categorizer.logits(val_x)
        in_head = np.isin(val_y_arr, head_classes)
        categorizer.temperature = fit_temperature(logits[in_head], [head_classes.index(v) for v in val_y_arr[in_head]])
        categorizer.min_energy = float(np.quantile(categorizer.energy(logits[known_val]), 1 - tpr))
    categorizer.method = {
        "name": "cosine logistic head" + (" on the embedding and ImageNet's class scores" if scene else "")
                + (" with a learned 'other' class" if OTHER in head_classes else "")
                + " + temperature scaling + energy gate",
        "inputs": "embedding + ImageNet log-probabilities" if scene is not None else "embedding",
        "logistic_c": c, "other_weight": other_weight if OTHER in head_classes else None,
        "temperature": round(categorizer.temperature, 4),
        "gate": {"score": "energy over the categories' logits", "min_energy": categorizer.min_energy,
                 "validation_pass_rate": tpr if categorizer.min_energy is not None else None},
        "train_counts": counts, "validation_images": len(val_x),
    }
    return categorizer


def fit_temperature(logits: np.ndarray, targets: list[int]) -> float:
    """The temperature that minimises the negative log-likelihood of the targets (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    targets_arr = np.asarray(targets)
    if not len(targets_arr):
        return 1.0

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(targets_arr)), targets_arr].mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))
