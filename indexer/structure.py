"""Is one picture a copy of another? A structural check on grey versions, allowing for crops and tone edits.

Global embeddings put two different beaches, or two receipts, close together;
a copy (re-encoded, resized, tone-mapped, recoloured, watermarked, rotated
upright, or cropped) keeps the same structure pixel for pixel.

Tone edits (curves, HDR tone maps, selective colour) change grey levels
non-linearly, and differently across the frame, so every comparison here is
of *locally normalised* pictures (``tone_normalised``): each pixel minus the
mean of its neighbourhood, over the neighbourhood's contrast. That keeps the
structure and drops the tones; it also takes flat areas (sky, a page's
margin) to zero, so they cannot make two pictures look alike. It was chosen
over plain correlation and a rank transform on the development pairs
(``benchmarks/duplicates.py``): on the same candidate pairs it let through a
tenth as many different pictures at the same recall.

Three looks, cheapest first, each only for pairs the one before passed:
- ``frame_score``: the two thumbnails as the same framing, one dot product of
  precomputed signatures (``frame_signature``), so thousands of pairs cost a
  matrix product;
- ``align``: the best placement of one thumbnail inside the other, with
  either one shrunk to between ``MIN_CROP`` and 1 of the other's size
  (OpenCV's ``matchTemplate``: a tenth of scikit-image's time on pictures
  this small), which finds a crop;
- ``tile_agreement``: the aligned pair compared tile by tile at twice and
  four times the thumbnail's size. Screenshots of two pages of one web site
  share a layout that correlates like a copy at thumbnail size; what differs
  is the text and the pictures inside it, which only a closer look sees. A
  pair needs enough tiles with content that agree (``MIN_CONTENT_TILES``):
  two nearly blank pages have nothing to agree on, and are not copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_CROP = 0.65
_FRAME_SIDE = 32  # a frame signature's side: 1024 numbers, stored with each picture's facts
_STEP = 0.025
_COARSE_GATE = 0.5  # below this at a third of the size, no finer look makes a copy of it
TONE_SIGMA = 5.0 / 96  # the neighbourhood of local normalisation, as a share of the picture's longest side
_TONE_FLOOR = 4.0  # grey levels: contrast below this counts as flat, not as structure to amplify
_FLAT = 4.0  # a tile whose grey levels vary less than this (standard deviation) holds nothing to compare
MIN_CONTENT_TILES = 4  # fewer tiles with content than this: not enough picture to call two of them copies
SPARSE_SHARE = 0.3  # a picture with this share of flat tiles (a page, a screenshot) is also compared up close


@dataclass(frozen=True)
class Alignment:
    """Where the template (``a``, or ``b`` when ``swapped``) sits inside the other thumbnail.

    ``box`` is (x, y, width, height) in the other thumbnail's pixels; None when the two are compared
    as the same framing, whole frame to whole frame.
    """

    score: float
    swapped: bool = False
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Tiles:
    """How a tile-by-tile comparison went: tiles with content in either picture, and those that agree."""

    content: int
    agree: int

    @property
    def share(self) -> float:
        """Agreeing tiles over tiles with content, counting at least ``MIN_CONTENT_TILES`` of them."""
        return self.agree / max(self.content, MIN_CONTENT_TILES)


def tone_normalised(grey: np.ndarray) -> np.ndarray:
    """``grey`` (float) minus its local mean, over its local contrast: a tone curve leaves it unchanged."""
    sigma = TONE_SIGMA * max(grey.shape)
    grey = np.asarray(grey, np.float32)
    centred = grey - cv2.GaussianBlur(grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    contrast = np.sqrt(cv2.GaussianBlur(centred * centred, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
                       + _TONE_FLOOR ** 2)
    return centred / contrast


def frame_signature(normalised: np.ndarray) -> np.ndarray:
    """A unit vector of a tone-normalised thumbnail at a fixed size: two framings of one picture have a dot
    product near 1 (``frame_score``), whatever their sizes and aspect ratios."""
    small = _resize(normalised, (_FRAME_SIDE, _FRAME_SIDE)).ravel()
    small = small - small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


def flat_share(grey: np.ndarray, tile: int = 16) -> float:
    """The share of ``tile``-pixel tiles of ``grey`` that hold nothing (a page's margins, a plain wall)."""
    rows, columns = grey.shape[0] // tile, grey.shape[1] // tile
    if rows == 0 or columns == 0:
        return 1.0
    tiles = np.asarray(grey[: rows * tile, : columns * tile], np.float32).reshape(rows, tile, columns, tile)
    return float(np.mean(tiles.std(axis=(1, 3)) <= _FLAT))


def frame_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two stacks of ``frame_signature`` vectors: pairs scored at once."""
    return np.einsum("ij,ij->i", a, b)


def align(a: np.ndarray, b: np.ndarray, same_frame: float | None = None, good_enough: float = 0.97) -> Alignment:
    """The best placement of one tone-normalised thumbnail over the other, coarse to fine.

    ``same_frame`` is their ``frame_score`` when already known. Every scale is tried on thumbnails a third
    the size, and only the best coarse placement is refined at full thumbnail size, unless the coarse match
    is already poor.
    """
    if same_frame is None:
        same_frame = float(frame_signature(a) @ frame_signature(b))
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


def refine(a: np.ndarray, b: np.ndarray, a_thumb: tuple[int, int], b_thumb: tuple[int, int],
           alignment: Alignment, reach: float = _STEP / 2, slack: float = 2.0) -> Alignment:
    """A crop's placement found on thumbnails, made exact on the larger grey versions ``a`` and ``b``.

    On thumbnails the placement is only within a pixel and the scale within ``_STEP / 2``: at four times
    the size that is several pixels at the far edge, which the close-up tiles cannot absorb. Scales within
    ``reach`` and positions within ``slack`` thumbnail pixels of the coarse placement are searched again.
    """
    if alignment.box is None:
        return alignment
    template, search, s_thumb = (b, a, a_thumb) if alignment.swapped else (a, b, b_thumb)
    kx, ky = search.shape[1] / s_thumb[1], search.shape[0] / s_thumb[0]
    x, y, w, h = alignment.box
    found, box = -2.0, alignment.box
    for scale in np.linspace(1 - reach, 1 + reach, 5):
        width, height = max(6, round(w * scale * kx)), max(6, round(h * scale * ky))
        x0, y0 = max(0, round((x - slack) * kx)), max(0, round((y - slack) * ky))
        x1 = min(search.shape[1], max(round((x + w + slack) * kx), x0 + width))
        y1 = min(search.shape[0], max(round((y + h + slack) * ky), y0 + height))
        if x1 - x0 < width or y1 - y0 < height:
            continue
        small = _resize(template, (width, height))
        if _flat(small):
            continue
        window = np.ascontiguousarray(search[y0:y1, x0:x1], np.float32)
        _, score, _, (bx, by) = cv2.minMaxLoc(cv2.matchTemplate(window, small, cv2.TM_CCOEFF_NORMED))
        if score > found:
            found, box = score, ((x0 + bx) / kx, (y0 + by) / ky, width / kx, height / ky)
    return Alignment(alignment.score, alignment.swapped, box)


def tile_agreement(a: np.ndarray, b: np.ndarray, a_thumb: tuple[int, int], b_thumb: tuple[int, int],
                   alignment: Alignment, tile: int, shift: int, min_correlation: float) -> Tiles:
    """Compare ``a`` and ``b`` (grey versions, any size, of the thumbnails whose shapes are ``a_thumb`` and
    ``b_thumb``) once placed as ``alignment`` says, in tiles of ``tile`` pixels at their common size.

    Each tile may shift by up to ``shift`` pixels, since the placement found on thumbnails is only that
    exact, and agrees when its correlation reaches ``min_correlation``. A tile with content in one picture
    and none in the other disagrees. Correlation per tile is local, so a tone curve does not change it.
    """
    template, search, search_thumb = (b, a, a_thumb) if alignment.swapped else (a, b, b_thumb)
    if alignment.box is not None:
        x, y, w, h = alignment.box
        sy, sx = search.shape[0] / search_thumb[0], search.shape[1] / search_thumb[1]
        search = search[round(y * sy): max(round((y + h) * sy), round(y * sy) + 1),
                        round(x * sx): max(round((x + w) * sx), round(x * sx) + 1)]
    long_side = min(max(template.shape), max(search.shape))
    aspect = template.shape[1] / template.shape[0]
    width, height = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    columns, rows = max(2, round(width / tile)), max(2, round(height / tile))
    size = (columns * tile, rows * tile)
    t_image, s_image = _resize(template, size), _resize(search, size)
    t_tiles, s_tiles = _centred_tiles(t_image, rows, columns, tile), _centred_tiles(s_image, rows, columns, tile)
    t_std, s_std = np.sqrt((t_tiles * t_tiles).mean(axis=1)), np.sqrt((s_tiles * s_tiles).mean(axis=1))
    content = (t_std > _FLAT) | (s_std > _FLAT)
    both = (t_std > _FLAT) & (s_std > _FLAT)  # only a tile with content in both pictures can agree
    # In place, all tiles at once: most tiles of a copy agree there. The others get their window of shifts.
    in_place = (t_tiles * s_tiles).mean(axis=1) / np.maximum(t_std * s_std, 1e-6) >= min_correlation
    agree = int((both & in_place).sum())
    padded = cv2.copyMakeBorder(s_image, shift, shift, shift, shift, cv2.BORDER_REPLICATE)
    for k in np.flatnonzero(both & ~in_place).tolist():
        y0, x0 = (k // columns) * tile, (k % columns) * tile
        scores = cv2.matchTemplate(padded[y0: y0 + tile + 2 * shift, x0: x0 + tile + 2 * shift],
                                   t_image[y0: y0 + tile, x0: x0 + tile], cv2.TM_CCOEFF_NORMED)
        agree += float(np.nanmax(scores)) >= min_correlation
    return Tiles(int(content.sum()), agree)


def _centred_tiles(image: np.ndarray, rows: int, columns: int, tile: int) -> np.ndarray:
    tiles = image.reshape(rows, tile, columns, tile).swapaxes(1, 2).reshape(rows * columns, tile * tile)
    return tiles - tiles.mean(axis=1, keepdims=True)


def _match(template: np.ndarray, search: np.ndarray, f: float) -> tuple[float, tuple[int, int, int, int] | None]:
    """Best correlation of ``template`` shrunk by ``f`` anywhere inside ``search`` (-1 when it does not fit)."""
    w, h = round(template.shape[1] * f), round(template.shape[0] * f)
    if w < 6 or h < 6 or w > search.shape[1] or h > search.shape[0]:
        return -1.0, None
    small = _resize(template, (w, h))
    if _flat(small):
        return -1.0, None  # a flat patch matches anything
    scores = cv2.matchTemplate(np.ascontiguousarray(search, np.float32), small, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    return float(best), (int(x), int(y), w, h)


def _flat(image: np.ndarray) -> bool:
    return float(cv2.meanStdDev(image)[1][0, 0]) < 1e-3


def _shrink(image: np.ndarray, factor: float) -> np.ndarray:
    return _resize(image, (max(6, round(image.shape[1] * factor)), max(6, round(image.shape[0] * factor))))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as float32 at ``size`` (width, height): averaged when shrinking, bilinear when growing."""
    image = np.asarray(image, np.float32)
    shrinking = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
