"""How training reports progress without knowing who shows it (the CLI makes tqdm bars on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...  # tqdm's returns a bool; nothing reads it

    def set_postfix(self, **figures: object) -> object: ...

    def close(self) -> object: ...


# (description, total or None, unit) -> a Progress; TrainOptions.progress is one of these.
ProgressFactory = Callable[[str, "int | None", str], Progress]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **figures: object) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(description: str, total: int | None, unit: str) -> Progress:
    """The default: progress goes nowhere."""
    return _Silent()
