"""How a job tells its caller what it is doing: a bar to move, a line to show, a file it left out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _nothing(*args: object) -> None:
    return None


@dataclass(frozen=True)
class Progress:
    """Callbacks a job calls as it goes; each does nothing unless given.

    ``phase`` starts a new stretch of work with ``total`` steps (None: not known yet), ``advance`` moves it
    on, ``note`` is a one-line message for the person, ``detail`` a line about one item (a group found),
    ``skipped`` a file left out (path, reason, detail). A quiet caller drops details and skipped files.
    """

    phase: Callable[[str, int | None], object] = _nothing
    advance: Callable[[int], object] = _nothing
    note: Callable[[str], object] = _nothing
    skipped: Callable[[str, str, str], object] = _nothing
    detail: Callable[[str], object] = _nothing


QUIET = Progress()
