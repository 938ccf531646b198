"""Which model a command uses: the shipped default, plain ImageNet, or a trained folder.

A model folder (what ``cbir train`` writes) holds ``model_card.json``, the
categorizer ``categorizer.npz`` (pooled features -> the probability of each
category and of "other", see indexer.categorizer) and, when training changed
the ResNet-50 itself, ``trunk.keras``. A head on the unchanged ImageNet trunk
stays small, which is how the default model ships inside the package. Model
folders from before open-set categories hold ``head.keras`` instead, which
still works (closed-set).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from cbir.config import DUPLICATES_FOLDER
from cbir.errors import ModelError
from indexer.categorizer import load_categorizer

if TYPE_CHECKING:
    from indexer.categorizer import Categorizer

DEFAULT_MODEL = "default"
IMAGENET_MODEL = "imagenet"
CARD_FILE = "model_card.json"
CATEGORIZER_FILE = "categorizer.npz"
HEAD_FILE = "head.keras"
TRUNK_FILE = "trunk.keras"
CARD_FORMAT = "cbir-model"
CARD_FORMAT_VERSION = 1
MODEL_HELP = (
    "Model: 'default' (the shipped gallery categories), 'imagenet' (no categories) or a folder "
    "written by `cbir train` (default: $CBIR_MODEL, else the model the index was built with, else 'default')."
)


def default_model_dir() -> Path:

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
    def trunk_file(self) -> Path | None:
        if self.directory is None or not self.card or not self.card.get("trunk", {}).get("file"):
            return None
        return self.directory / self.card["trunk"]["file"]

    @property
    def head_file(self) -> Path | None:
        """What the categories come from: ``categorizer.npz``, or an older model's ``head.keras``."""
        if self.directory is None:
            return None
        new = self.directory / CATEGORIZER_FILE
        return new if new.is_file() else self.directory / HEAD_FILE

    @property
    def name(self) -> str:
        return self.card.get("name", self.ref) if self.card else self.ref

    @property
    def trunk_id_hint(self) -> str | None:
        """The trunk id the model card records (checked against the real one when the network loads)."""
        return (self.card or {}).get("trunk", {}).get("id")

    def categorizer(self) -> Categorizer | None:
        """The model's categorizer (NumPy), or None for a model without categories."""

        return load_categorizer(self.directory, self.classes) if self.directory is not None else None


def head_id(ref: ModelRef) -> str:
    """The head part of a model id: the model's name and a digest of its categorizer file ("" without one)."""
    if ref.head_file is None:
        return ""
    info = ref.head_file.stat()
    return f"{slug(ref.name)}-{_file_digest(ref.head_file, info.st_size, info.st_mtime_ns)[:12]}"


@functools.lru_cache(maxsize=16)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is read again
    return hashlib.sha256(path.read_bytes()).hexdigest()


MAX_CLASS_NAME = 64
# 'all' is what `cbir clean --category all` means; 'other' is the answer for a photo of none of them;
# 'duplicates' is where `cbir duplicates` sets copies aside.
RESERVED_CLASS_NAMES = ("all", "other", DUPLICATES_FOLDER)


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a category (it becomes a folder name when cleaning), or None if it can."""
    if not isinstance(name, str) or not name:
        return "a class name must be a non-empty string"
    if len(name) > MAX_CLASS_NAME or len(os.fsencode(name)) > 255:
        return f"longer than {MAX_CLASS_NAME} characters"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if name in (".", "..") or name.startswith("."):
        return "names a hidden or special folder"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return "contains control or invisible characters"
    if name != name.strip():
        return "starts or ends with white space"
    if name.lower() in RESERVED_CLASS_NAMES:
        return f"{name!r} is a reserved word"
    return None


def check_class_names(classes: list, where: str) -> None:
    """Refuse a model whose class list could send files anywhere but a plain folder per class."""
    for name in classes:
        problem = class_name_problem(name)
        if problem:
            raise ModelError(f"{where} lists the class {name!r}, which cannot be a category: {problem} "
                             "(a class name becomes a folder name when cleaning); this model is refused")
    if len(set(classes)) != len(classes):
        raise ModelError(f"{where} lists a class twice; this model is refused")


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
    if (not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("classes"), list)
            or not isinstance(card.get("format_version", 0), int) or not isinstance(card.get("trunk", {}), dict)):
        raise ModelError(f"{path} is not a cbir model card")
    if card.get("format_version", 0) > CARD_FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer cbir (model format {card['format_version']}); upgrade cbir")
    check_class_names(card["classes"], str(path))
    if not (directory / CATEGORIZER_FILE).is_file() and not (directory / HEAD_FILE).is_file():
        raise ModelError(f"model folder {directory} has no {CATEGORIZER_FILE}")
    trunk = card.get("trunk", {}).get("file")
    if trunk and (not isinstance(trunk, str) or os.path.basename(trunk) != trunk or trunk in (".", "..")):
        raise ModelError(f"{path} names a trunk file outside its folder ({trunk!r}); this model is refused")
    if trunk and not (directory / trunk).is_file():
        raise ModelError(f"model folder {directory} has no {trunk}")
    return card
