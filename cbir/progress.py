"""Progress bars on stderr (tqdm), shown only on a terminal."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None = None, disable: bool = False, unit: str = "img", desc: str | None = None) -> tqdm:
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                disable=True if disable else None)
