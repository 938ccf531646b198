"""Which model a command uses: the shipped default, plain ImageNet, or a trained folder.

A model folder (what ``cbir train`` writes) holds ``model_card.json``, the
category head ``head.keras`` (pooled features -> class probabilities) and,
when training changed the ResNet-50 itself, ``trunk.keras``. A head trained on
the unchanged ImageNet trunk stays kilobytes, which is how the default model
ships inside the package.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import ModelError

DEFAULT_MODEL = "default"
IMAGENET_MODEL = "imagenet"
CARD_FILE = "model_card.json"
HEAD_FILE = "head.keras"
TRUNK_FILE = "trunk.keras"
CARD_FORMAT = "cbir-model"
CARD_FORMAT_VERSION = 1
MODEL_HELP = (
    "Model: 'default' (the shipped gallery categories), 'imagenet' (no categories) or a folder "
    "written by `cbir train` (default: $CBIR_MODEL, else the model the index was built with, else 'default')."
)


def default_model_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("cbir") / "data" / "models" / "gallery"))


@dataclass(frozen=True)
class ModelRef:
    """A resolved model choice. ``ref`` is what gets recorded in an index."""

    ref: str
    directory: Path | None
    card: dict | None

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"]) if self.card else []

    @property
    def has_head(self) -> bool:
        return self.directory is not None

    @property
    def trunk_file(self) -> Path | None:
        if self.directory is None or not self.card or not self.card.get("trunk", {}).get("file"):
            return None
        return self.directory / self.card["trunk"]["file"]

    @property
    def head_file(self) -> Path | None:
        return self.directory / HEAD_FILE if self.directory is not None else None

    @property
    def name(self) -> str:
        return self.card.get("name", self.ref) if self.card else self.ref


def slug(name: str) -> str:
    """A short file-name-safe form of a model name or folder path."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in os.path.basename(name.rstrip("/")))
    return cleaned[:40] or "model"


def resolve_model(option: str | os.PathLike[str] | None, recorded: str | None = None) -> ModelRef:
    """``--model`` wins, then ``$CBIR_MODEL``, then what the index recorded, then the default."""
    choice = str(option) if option else os.environ.get("CBIR_MODEL", "").strip() or recorded or DEFAULT_MODEL
    if choice == IMAGENET_MODEL:
        return ModelRef(IMAGENET_MODEL, None, None)
    if choice == DEFAULT_MODEL:
        directory = default_model_dir()
        if not (directory / CARD_FILE).is_file():
            raise ModelError(f"the default model is missing from this install ({directory}); reinstall cbir "
                             "or pass --model imagenet")
        return ModelRef(DEFAULT_MODEL, directory, read_card(directory))
    directory = Path(choice).expanduser().resolve()
    if not directory.is_dir():
        raise ModelError(f"model folder {directory} does not exist (expected a folder written by `cbir train`)")
    return ModelRef(str(directory), directory, read_card(directory))


def read_card(directory: Path) -> dict:
    path = directory / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{directory} is not a cbir model folder: it has no {CARD_FILE}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if card.get("format") != CARD_FORMAT or not isinstance(card.get("classes"), list):
        raise ModelError(f"{path} is not a cbir model card")
    if int(card.get("format_version", 0)) > CARD_FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer cbir (model format {card['format_version']}); upgrade cbir")
    if not (directory / HEAD_FILE).is_file():
        raise ModelError(f"model folder {directory} has no {HEAD_FILE}")
    trunk = card.get("trunk", {}).get("file")
    if trunk and not (directory / trunk).is_file():
        raise ModelError(f"model folder {directory} has no {trunk}")
    return card
