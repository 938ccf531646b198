"""How vectors are stored in the catalog."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cbir.errors import DamagedFileError

VECTOR_DTYPE = np.dtype("<f2")


def encode(vector: np.ndarray) -> bytes:
    """float16 halves the catalog; cosine scores move by about 1e-4, far below rank gaps."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_many(blobs: Iterable[bytes], dim: int) -> np.ndarray:
    parts = list(blobs)
    size = dim * VECTOR_DTYPE.itemsize
    if any(not isinstance(blob, bytes) or len(blob) != size for blob in parts):
        raise DamagedFileError(f"the catalog holds a stored vector that is not {dim} float16 values; "
                               "`cbir index` embeds its image again (`cbir status --check` names the damage)")
    vectors = np.frombuffer(b"".join(parts), dtype=VECTOR_DTYPE).reshape(-1, dim).astype(np.float32)
    if not np.isfinite(vectors).all():
        raise DamagedFileError("the catalog holds a stored vector whose values are not numbers (a scribbled page); "
                               "`cbir status --check` names the damage, `cbir index --rebuild DIR` starts over")
    return vectors
