"""Training-time augmentation: flips, small rotations, zoom and brightness.

Applied to uint8 RGB batches before preprocessing, for training images only;
validation and test images are never augmented.
"""

from __future__ import annotations

import numpy as np


def build_augmenter(seed: int):
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.03, fill_mode="reflect", seed=seed + 1),  # about +-11 degrees
            keras.layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 3),
        ],
        name="augment",
    )


def augment(augmenter, batch_rgb_uint8: np.ndarray) -> np.ndarray:
    out = augmenter(batch_rgb_uint8.astype(np.float32), training=True)
    return np.clip(np.asarray(out), 0, 255).astype(np.uint8)
