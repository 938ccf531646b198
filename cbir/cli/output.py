"""How the CLI writes results: unambiguous lines for people (cbir.text), NUL-separated fields for scripts."""

from __future__ import annotations

import os
import sys

import click

from cbir.text import quote_path


def emit(fields: list[str], paths: list[str | os.PathLike[str]], null: bool) -> None:
    """Write one result: ``fields`` then ``paths``, tab-separated on a line, or each NUL-terminated."""
    if null:
        record = [field.encode() for field in fields] + [os.fsencode(path) for path in paths]
        sys.stdout.flush()  # anything written as text so far goes first
        sys.stdout.buffer.write(b"".join(part + b"\0" for part in record))
    else:
        click.echo("\t".join([*fields, *(quote_path(p) for p in paths)]))

