"""Which changed paths are ready to index: a file is read once, after it stops changing.

A photo being copied or downloaded is written in pieces; reading it half-way would index a broken picture
and then index it again. So a path waits until ``settle_s`` has passed since its last event and its size
and modification time are what they were then (the second check catches writers whose writes raise no
event, as on network filesystems). A path that is gone when its time comes is handed on as gone; a rename
arrives as one path gone and one new, and both are handed on together so that the move keeps its vector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Stat = tuple[int, int] | None  # (size, mtime_ns), or None when the path does not exist


def stat_of(path: str) -> Stat:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


@dataclass
class _Pending:
    stat: Stat
    due: float


@dataclass
class Ready:
    """Paths to index now: files (or folders) that exist and have settled, and paths that are gone."""

    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.gone)

    def __len__(self) -> int:
        return len(self.changed) + len(self.gone)


class Settler:
    """Changed paths waiting to settle (see the module's docstring)."""

    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic,
                 stat: Callable[[str], Stat] = stat_of) -> None:
        self.settle_s = settle_s
        self._clock = clock
        self._stat = stat
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, path: str) -> None:
        """Something happened at ``path``: it waits ``settle_s`` from now."""
        self._pending[path] = _Pending(self._stat(path), self._clock() + self.settle_s)

    def next_due(self) -> float | None:
        """Seconds until the next path may be ready (0: now), or None when nothing waits."""
        if not self._pending:
            return None
        return max(0.0, min(p.due for p in self._pending.values()) - self._clock())

    def take_ready(self) -> Ready:
        """The paths whose time has come and that did not change since their last event."""
        now = self._clock()
        ready = Ready()
        for path, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            current = self._stat(path)
            if current != pending.stat:
                pending.stat, pending.due = current, now + self.settle_s  # still being written
                continue
            del self._pending[path]
            (ready.changed if current is not None else ready.gone).append(path)
        return ready
