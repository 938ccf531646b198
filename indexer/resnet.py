"""The ResNet-50 network cbir runs: Keras 3's architecture, ImageNet weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

INPUT_SIZE = 224
EMBEDDING_DIM = 2048
NUM_IMAGENET_CLASSES = 1000
# Keras 3's ResNet50 uses this epsilon in every BatchNormalization layer,
# which matches the original Caffe model the ImageNet weights come from.
KERAS_BN_EPSILON = 1.001e-5
# Caffe-style preprocessing the ImageNet weights were trained with: BGR order,
# per-channel mean subtracted, no scaling.
_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def build_resnet50() -> keras.Model:
    """ResNet-50 with the ImageNet classifier on top and no weights loaded."""
    import keras

    return keras.applications.ResNet50(weights=None, include_top=True)


def preprocess(batch_rgb_uint8: np.ndarray) -> np.ndarray:
    """uint8 RGB images (N, 224, 224, 3) to the network's float input."""
    x = batch_rgb_uint8[..., ::-1].astype(np.float32)
    x -= _BGR_MEAN
    return x


def imagenet_trunk(full: keras.Model) -> keras.Model:
    """The network up to global average pooling: image in, 2048 pooled features out."""
    import keras

    return keras.Model(full.inputs, full.get_layer("avg_pool").output, name="resnet50_trunk")
