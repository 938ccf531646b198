"""Paths and messages as one safe line of text, for people (the CLI's output and its messages).

A POSIX file name may hold any byte but '/' and NUL: tabs, newlines, bytes
that are not UTF-8. Printed raw, such a name could forge a score column or a
whole extra result line. Plain output therefore quotes a path the way git
does when it needs to (``"caf\\351.jpg"``, ``"a\\tb.jpg"``) and leaves every
other path as it is; ``-0``/``--null`` writes each field followed by a NUL
byte with paths as their exact bytes, as ``find -print0`` does (cbir.cli.output).
"""

from __future__ import annotations

import os

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
            '"': '\\"', "\\": "\\\\"}


def _needs_quoting(c: str) -> bool:
    code = ord(c)
    return code < 0x20 or code == 0x7F or c in '"\\' or 0xDC80 <= code <= 0xDCFF


def _escape(c: str) -> str:
    code = ord(c)
    if c in _ESCAPES:
        return _ESCAPES[c]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogate escape
        return f"\\{code - 0xDC00:03o}"
    return f"\\{code:03o}"


def quote_path(path: str | os.PathLike[str]) -> str:
    """``path`` as is, or C-quoted when it holds control characters, quotes, backslashes or non-UTF-8 bytes."""
    text = os.fspath(path)
    if not any(_needs_quoting(c) for c in text):
        return text
    return '"' + "".join(_escape(c) if _needs_quoting(c) else c for c in text) + '"'


def shortened(line: str, limit: int) -> str:
    """``line``, cut at a word and ended with '...' when longer than ``limit``, as click shortens help."""
    return line if len(line) <= limit else line[:limit - 3].rsplit(" ", 1)[0] + "..."


def one_line(text: str) -> str:
    """A message safe to print as one line: control characters and undecodable bytes escaped."""
    return "".join(_escape(c) if _needs_quoting(c) and c not in '"\\' else c for c in text)
