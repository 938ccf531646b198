"""Typed errors raised by library code; only the CLI turns them into exit codes."""

from __future__ import annotations

import errno
import os


class CbirError(Exception):
    """Base class for every error cbir reports to a user as one line."""

    exit_code = 1


class UsageError(CbirError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class UnknownWordError(UsageError):
    """A search word the vocabulary has no tag for; ``suggestions`` are real words close to it."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions or []


class ImageNotFoundError(CbirError):
    exit_code = 3


class ImageDecodeError(CbirError):
    """An image file exists but cannot be decoded; ``reason`` is a short tag."""

    exit_code = 4

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class IndexEmptyError(CbirError):
    exit_code = 5


class IndexBusyError(CbirError):
    exit_code = 6


class IndexIncompatibleError(CbirError):
    """The index was written by another schema version or another model."""

    exit_code = 7


def mixed_models(index_dir: object, index_model: str, other_model: str) -> IndexIncompatibleError:
    """The refusal to put vectors of two models in one index (they are not comparable)."""
    return IndexIncompatibleError(
        f"index {index_dir} was built with model {index_model}, not {other_model}; vectors from two models "
        "cannot be mixed: use the index's model, or another --index")


class WeightsUnavailableError(CbirError):
    exit_code = 8


class ModelError(CbirError):
    """A model folder is missing, incomplete, or does not fit the weights or data given."""

    exit_code = 9


class IncompleteMoveError(CbirError):
    """Some files of a clean or undo could not be moved; they stay where they are, and are listed."""

    exit_code = 10


class ReadOnlyError(CbirError):
    """Something cbir must write (the index, a folder it moves files into) is on a read-only filesystem."""

    exit_code = 11


class DiskFullError(CbirError):
    """The filesystem cbir writes to has no space left; what was committed before is kept."""

    exit_code = 12


class DamagedFileError(CbirError):
    """A file cbir cannot rebuild by itself (the clean journal, the catalog) is damaged."""

    exit_code = 13


class ClusterError(CbirError):
    """The Ray cluster cannot be reached or started, or its workers cannot run the model as this machine does."""

    exit_code = 14


class WatchLimitError(CbirError):
    """The folders need more file watches (inotify) than the system allows a user."""

    exit_code = 15


class WatchError(CbirError):
    """Watching folders failed: the indexing process kept dying, or the file watch broke."""

    exit_code = 16


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest existing ancestor)."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and current != os.path.dirname(current):
        current = os.path.dirname(current)
    while not os.path.ismount(current):
        current = os.path.dirname(current)
    return current


def disk_full(path: str | os.PathLike[str], doing: str) -> DiskFullError:
    """``doing`` says what was being done, as in "writing the index"."""
    return DiskFullError(
        f"no space left on the filesystem at {mount_point(path)} while {doing} ({path}): free some space "
        "and run the command again; everything committed before this is kept")


def from_os_error(exc: OSError, path: str | os.PathLike[str], doing: str) -> CbirError | None:
    """The typed error for a write that failed for want of space or write access, else None."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(path, doing)
    if exc.errno == errno.EROFS:
        return ReadOnlyError(f"cannot finish {doing}: {path} is on a read-only filesystem ({mount_point(path)})")
    return None
