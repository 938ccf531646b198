"""The category head: pooled ResNet-50 features in, class probabilities out.

Features are L2-normalised inside the head and scaled by a fixed factor (a
cosine classifier), so the head is the same whether it is fed raw pooled
features (end-to-end fine-tuning) or the unit-length retrieval embedding.
"""

from __future__ import annotations

import numpy as np

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
