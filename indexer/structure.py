"""Is one picture a copy of another? A structural check on grey thumbnails, allowing for crops.

Global embeddings put two different beaches, or two receipts, close together;
a copy (re-encoded, resized, brightened, watermarked, rotated upright, or
cropped) keeps the same structure pixel for pixel. ``align`` finds the best
normalised cross-correlation (scikit-image's ``match_template``) between the
two thumbnails: first as the same framing, then, when that is not already
convincing, with either one shrunk to between ``MIN_CROP`` and 1 of the
other's size and slid over it, which finds a crop. 1 is identical structure.

Screenshots of two pages of one web site, or two forms, share a layout that
correlates as well as a copy at thumbnail size; what differs is the text and
the pictures inside the layout. ``detail_agreement`` looks at the aligned
pair at twice the size, tile by tile: in a copy nearly every tile that has
something in it agrees, in two different pages the tiles that hold their
content do not. The thresholds were chosen on half of the development pairs
and the gallery's screenshots and scans (``benchmarks/duplicates.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MIN_CROP = 0.65
_FRAME_SIDE = 64
_STEP = 0.025
_COARSE_GATE = 0.6  # below this at a third of the size, no finer look makes a copy of it
DETAIL_COMPARE = 192  # the detail check's size: larger loses to the placement error, smaller to the text
_TILE = 32
_SHIFT = 3
_FLAT = 4.0  # grey-level standard deviation below which a tile holds nothing to compare


@dataclass(frozen=True)
class Alignment:
    """Where the template (``a``, or ``b`` when ``swapped``) sits inside the other thumbnail.

    ``box`` is (x, y, width, height) in the other thumbnail's pixels; None when the two are compared
    as the same framing, whole frame to whole frame.
    """

    score: float
    swapped: bool = False
    box: tuple[int, int, int, int] | None = None


def structure_score(a: np.ndarray, b: np.ndarray, good_enough: float = 0.97) -> float:
    """The best normalised cross-correlation of thumbnails ``a`` and ``b`` (float grey arrays), in [-1, 1]."""
    return align(a, b, good_enough).score


def align(a: np.ndarray, b: np.ndarray, good_enough: float = 0.97) -> Alignment:
    """The best placement of one thumbnail over the other, coarse to fine.

    Every scale is tried on thumbnails a third the size, and only the best coarse placement is refined at
    full thumbnail size, unless the coarse match is already poor.
    """
    same_frame = _ncc(_resize(a, (_FRAME_SIDE, _FRAME_SIDE)), _resize(b, (_FRAME_SIDE, _FRAME_SIDE)))
    best = Alignment(same_frame)
    if same_frame >= good_enough:
        return best
    coarse_a, coarse_b = _shrink(a, 1 / 3), _shrink(b, 1 / 3)
    coarse, swapped, scale = -1.0, False, 1.0
    for d, (template, search) in enumerate(((coarse_a, coarse_b), (coarse_b, coarse_a))):
        for f in np.arange(1.0, MIN_CROP - 1e-9, -2 * _STEP):
            score, _ = _match(template, search, f)
            if score > coarse:
                coarse, swapped, scale = score, bool(d), f
    if coarse < _COARSE_GATE:
        return best if same_frame >= coarse else Alignment(coarse)
    template, search = (b, a) if swapped else (a, b)
    for f in np.arange(min(1.0, scale + 2 * _STEP), max(MIN_CROP, scale - 2 * _STEP) - 1e-9, -_STEP / 2):
        score, box = _match(template, search, f)
        if score > best.score:
            best = Alignment(score, swapped, box)
        if best.score >= good_enough:
            break
    return best


def detail_agreement(a: np.ndarray, b: np.ndarray, a_thumb: tuple[int, int], b_thumb: tuple[int, int],
                     alignment: Alignment, min_correlation: float = 0.7) -> float:
    """The share of tiles with content that agree once ``a`` and ``b`` are aligned, in [0, 1].

    ``a`` and ``b`` are larger grey versions of the thumbnails whose shapes are ``a_thumb`` and ``b_thumb``
    and whose ``alignment`` was found by ``align``. The aligned pair is compared at up to ``DETAIL_COMPARE``
    pixels in tiles of ``_TILE``; each tile may shift by up to ``_SHIFT`` pixels, since the thumbnail
    placement is only that exact, and agrees when its correlation reaches ``min_correlation``. A tile
    with content in one picture and none in the other disagrees. 1.0 when neither has any content.
    """
    template, search, search_thumb = (b, a, a_thumb) if alignment.swapped else (a, b, b_thumb)
    if alignment.box is not None:
        x, y, w, h = alignment.box
        sy, sx = search.shape[0] / search_thumb[0], search.shape[1] / search_thumb[1]
        search = search[round(y * sy): max(round((y + h) * sy), round(y * sy) + 1),
                        round(x * sx): max(round((x + w) * sx), round(x * sx) + 1)]
    long_side = min(DETAIL_COMPARE, max(template.shape), max(search.shape))
    aspect = template.shape[1] / template.shape[0]
    width, height = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    columns, rows = max(2, round(width / _TILE)), max(2, round(height / _TILE))
    size = (columns * _TILE, rows * _TILE)
    t = _centred_tiles(_resize(template, size), rows, columns)
    t_std = np.sqrt((t * t).mean(axis=1))
    padded = np.pad(_resize(search, size), _SHIFT, mode="edge")
    best = np.full(len(t), -1.0, np.float32)
    s_std_here = t_std
    for dy in range(2 * _SHIFT + 1):
        for dx in range(2 * _SHIFT + 1):
            s = _centred_tiles(padded[dy: dy + size[1], dx: dx + size[0]], rows, columns)
            s_std = np.sqrt((s * s).mean(axis=1))
            if dy == dx == _SHIFT:
                s_std_here = s_std
            corr = (t * s).mean(axis=1) / np.maximum(t_std * s_std, 1e-6)
            best = np.maximum(best, np.where(s_std > 1e-3, corr, -1.0))
    content = (t_std > _FLAT) | (s_std_here > _FLAT)
    if not content.any():
        return 1.0
    agree = (t_std > _FLAT) & (s_std_here > _FLAT) & (best >= min_correlation)
    return float(agree[content].mean())


def _centred_tiles(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    tiles = image.reshape(rows, _TILE, columns, _TILE).swapaxes(1, 2).reshape(rows * columns, _TILE * _TILE)
    return tiles - tiles.mean(axis=1, keepdims=True)


def _match(template: np.ndarray, search: np.ndarray, f: float) -> tuple[float, tuple[int, int, int, int] | None]:
    """Best correlation of ``template`` shrunk by ``f`` anywhere inside ``search`` (-1 when it does not fit)."""
    from skimage.feature import match_template

    w, h = round(template.shape[1] * f), round(template.shape[0] * f)
    if w < 6 or h < 6 or w > search.shape[1] or h > search.shape[0]:
        return -1.0, None
    small = _resize(template, (w, h))
    if small.std() < 1e-3:
        return -1.0, None  # a flat patch matches anything
    scores = match_template(search, small)
    y, x = np.unravel_index(int(scores.argmax()), scores.shape)
    return float(scores[y, x]), (int(x), int(y), w, h)


def _shrink(image: np.ndarray, factor: float) -> np.ndarray:
    return _resize(image, (max(6, round(image.shape[1] * factor)), max(6, round(image.shape[0] * factor))))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(image, np.float32)).resize(size, Image.Resampling.BILINEAR),
                      np.float32)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 1e-6 else 0.0
