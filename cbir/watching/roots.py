"""Whether each watched folder is there: a drive can be unplugged, unmounted, or come back.

A folder is *available* when it is a folder with something in it. An unmounted drive usually leaves its
mount point behind as an empty folder, and reading that as "every photo deleted" would drop them all from
the catalog; so an empty folder counts as away, and a folder's photos are never dropped because it is away
(unless the watcher is told to, after a time: ``forget_after_s``). A folder that is there but is no longer
the same folder (another device or inode: remounted, or deleted and made again) is *replaced*, and the
watcher catches up with it as on a restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Identity = tuple[int, int]


def identity(folder: str) -> Identity | None:
    """(device, inode) of a folder with something in it, else None (missing, not a folder, empty, unreadable)."""
    try:
        info = os.stat(folder)
        with os.scandir(folder) as entries:
            if next(entries, None) is None:
                return None
    except OSError:
        return None
    return info.st_dev, info.st_ino


@dataclass
class Changes:
    gone: list[str] = field(default_factory=list)
    back: list[str] = field(default_factory=list)  # back after being away, or replaced: catch up with them


class Roots:
    """The watched folders and which of them are away, and since when."""

    def __init__(self, folders: list[str], clock: Callable[[], float] = time.time,
                 look: Callable[[str], Identity | None] = identity) -> None:
        self._clock = clock
        self._look = look
        self.folders = list(folders)
        self._seen: dict[str, Identity] = {}
        self.away_since: dict[str, float] = {}
        for folder in self.folders:
            found = look(folder)
            if found is None:
                self.away_since[folder] = clock()
            else:
                self._seen[folder] = found

    @property
    def present(self) -> list[str]:
        return [f for f in self.folders if f not in self.away_since]

    @property
    def away(self) -> list[str]:
        return [f for f in self.folders if f in self.away_since]

    def check(self) -> Changes:
        """Look at every folder again; what went away and what came back (or was replaced) since last time."""
        changes = Changes()
        for folder in self.folders:
            found = self._look(folder)
            if found is None:
                if folder not in self.away_since:
                    self.away_since[folder] = self._clock()
                    changes.gone.append(folder)
                continue
            if folder in self.away_since or self._seen.get(folder) != found:
                self.away_since.pop(folder, None)
                changes.back.append(folder)
            self._seen[folder] = found
        return changes

    def away_longer_than(self, seconds: float) -> list[str]:
        now = self._clock()
        return [f for f, since in self.away_since.items() if now - since >= seconds]
