"""Run cbir inside a private mount namespace, where a test may mount a tiny tmpfs or a read-only bind.

Root ignores file modes, so "read-only" and "disk full" need real filesystems. ``unshare --mount``
gives a process its own mount table: mounts made inside vanish with it and never touch the host.
Without the privilege for that (or without unshare), the tests that need it skip with the reason.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> list[str] | None:
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    candidates = [[unshare, "--mount", "--propagation", "private"]] if os.geteuid() == 0 else []
    candidates.append([unshare, "--user", "--map-root-user", "--mount"])
    for prefix in candidates:
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                                "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def need_mounts() -> list[str]:
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot make a private mount namespace here (unshare --mount), so no tmpfs or read-only mount")
    return prefix


def run_in_namespace(setup: str, commands: list[list[str]], env: dict[str, str], workdir: Path,
                     between: dict[int, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``setup`` (shell, e.g. mounts), then each cbir command, all in one private mount namespace.

    ``between`` maps a command's position to shell run just before it (a remount, say). Returns one
    CompletedProcess per command, with its exit code, stdout and stderr.
    """
    prefix = need_mounts()
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["set -u", setup]
    for i, args in enumerate(commands):
        if between and i in between:
            lines.append(between[i])
        quoted = " ".join(_quote(a) for a in args)
        lines.append(f"{_quote(sys.executable)} -m cbir {quoted} >{workdir}/out{i} 2>{workdir}/err{i}; "
                     f"echo $? >{workdir}/rc{i}")
    proc = subprocess.run([*prefix, "bash", "-c", "\n".join(lines)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    results = []
    for i, args in enumerate(commands):
        rc = int((workdir / f"rc{i}").read_text())
        results.append(subprocess.CompletedProcess(args, rc, (workdir / f"out{i}").read_text(errors="replace"),
                                                   (workdir / f"err{i}").read_text(errors="replace")))
    return results


def python_in_namespace(setup: str, code: str, env: dict[str, str]) -> dict:
    """Run ``setup`` then a Python snippet that prints one JSON object; return that object."""
    prefix = need_mounts()
    script = f"set -eu\n{setup}\n{_quote(sys.executable)} -c {_quote(code)}"
    proc = subprocess.run([*prefix, "bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "'\\''") + "'"
