"""Typed errors raised by library code; only the CLI turns them into exit codes."""

from __future__ import annotations


class CbirError(Exception):
    """Base class for every error cbir reports to a user as one line."""

    exit_code = 1


class UsageError(CbirError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


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


class WeightsUnavailableError(CbirError):
    exit_code = 8


class ModelError(CbirError):
    """A model folder is missing, incomplete, or does not fit the weights or data given."""

    exit_code = 9


class PartlyUndoneError(CbirError):
    """Some files of a clean run could not be put back; they stay where they are, and are listed."""

    exit_code = 10
