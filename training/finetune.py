"""Phase two of `top` and `all`: unfreeze part or all of ResNet-50 and train on images.

BatchNormalization layers stay frozen (inference mode) in every mode: with
small batches their statistics would otherwise drift away from ImageNet's.
"""

from __future__ import annotations

import math

import numpy as np

from indexer.resnet import preprocess
from training.augment import augment
from training.data_check import DatasetCheck

FINE_TUNE_MODES = ("head", "top", "all")
# Relative cost of one training image against one inference image: the
# backward pass costs about twice the forward pass for the layers it reaches.
STEP_COST = {"top": 2.0, "all": 5.0}
DEFAULT_LEARNING_RATE = {"head": 1e-3, "top": 1e-4, "all": 3e-5}


def set_trainable(trunk, mode: str) -> int:
    """Unfreeze the last stage (`top`) or everything (`all`); returns trainable weight count."""
    import keras

    trunk.trainable = True
    for layer in trunk.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif mode == "all":
            layer.trainable = True
        else:
            layer.trainable = mode == "top" and layer.name.startswith("conv5_")
    return int(sum(np.prod(w.shape) for w in trunk.trainable_weights))


def _batches_class():
    import keras

    class ImageBatches(keras.utils.PyDataset):
        """Batches of preprocessed images; training batches are augmented and reshuffled each epoch."""

        def __init__(self, data: DatasetCheck, indices: list[int], labels: np.ndarray, batch_size: int,
                     weights: np.ndarray | None = None, augmenter=None, seed: int = 0) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.data, self.indices, self.labels, self.weights = data, np.asarray(indices), labels, weights
            self.batch_size, self.augmenter = batch_size, augmenter
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(indices))
            if augmenter is not None:
                self.rng.shuffle(self.order)

        def __len__(self) -> int:
            return math.ceil(len(self.indices) / self.batch_size)

        def __getitem__(self, i: int):
            pick = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            pixels = self.data.load_pixels(self.indices[pick])
            if self.augmenter is not None:
                pixels = augment(self.augmenter, pixels)
            x = preprocess(pixels)
            if self.weights is None:
                return x, self.labels[pick]
            return x, self.labels[pick], self.weights[pick]

        def on_epoch_end(self) -> None:
            if self.augmenter is not None:
                self.rng.shuffle(self.order)

    return ImageBatches


def fine_tune(
    trunk,
    head,
    data: DatasetCheck,
    train_idx: list[int],
    train_y: np.ndarray,
    val_idx: list[int],
    val_y: np.ndarray,
    *,
    mode: str,
    class_weight: dict[int, float],
    augmenter,
    epochs: int,
    learning_rate: float,
    patience: int = 3,
    batch_size: int = 16,
    seed: int = 0,
    callbacks: list | None = None,
) -> dict[str, list[float]]:
    import keras

    set_trainable(trunk, mode)
    inputs = keras.Input((224, 224, 3), name="image")
    model = keras.Model(inputs, head(trunk(inputs)), name="classifier")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    batches = _batches_class()
    weights = np.asarray([class_weight[int(y)] for y in train_y], dtype=np.float32)
    train = batches(data, train_idx, train_y, batch_size, weights, augmenter, seed)
    val = batches(data, val_idx, val_y, batch_size) if len(val_idx) else None
    monitor = "val_loss" if val is not None else "loss"
    history = model.fit(
        train, validation_data=val, epochs=epochs, verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.3, patience=1, min_lr=1e-7),
            *(callbacks or []),
        ],
    )
    trunk.trainable = False
    return {key: [float(v) for v in values] for key, values in history.history.items()}
