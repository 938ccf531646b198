"""Whether a watcher keeps an index current: a small file beside the catalog, for `cbir status` to read.

The watcher writes ``watcher.json`` (its pid, since when, the folders it watches and those away) when it
starts and whenever a folder goes or comes back, and removes it when it stops. A watcher killed with -9
leaves the file behind; its pid is then gone, and the file is ignored (and replaced by the next watcher).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cbir.errors import CbirError
from index_store.atomic import atomic_write_text

STATE_FILE = "watcher.json"


def write_state(index_dir: Path, folders: list[str], away: list[str], since: float) -> None:
    """Say that this process watches ``folders`` for the index (best effort: a status line, not data)."""
    state = {"pid": os.getpid(), "since": round(since, 3), "updated": round(time.time(), 3),
             "folders": folders, "away": away}
    try:
        atomic_write_text(index_dir / STATE_FILE, json.dumps(state) + "\n")
    except (OSError, CbirError):
        pass  # a full or read-only disk: the jobs will say so


def clear_state(index_dir: Path) -> None:
    """Remove the file if it is this process's."""
    if (read_state(index_dir) or {}).get("pid") == os.getpid():
        try:
            (index_dir / STATE_FILE).unlink()
        except OSError:
            pass


def read_state(index_dir: Path) -> dict | None:
    """The running watcher's state, or None when no watcher runs (no file, or its process is gone)."""
    try:
        state = json.loads((index_dir / STATE_FILE).read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: alive
    return state
