"""The pixel checks behind `cbir duplicates`, on real photos and pages: crops, tone edits, turns, blank pages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import save_photo


def _picture(image: Image.Image | np.ndarray, path: Path):
    from cbir.copy_check import Picture
    from indexer.image_facts import decode_facts, encode_facts, image_facts

    save_photo(np.asarray(image), path)
    return Picture.of(decode_facts(encode_facts(image_facts(path))))  # as a scan reads them from the index


def _copies(a, b) -> bool:
    from cbir.copy_check import compare
    from cbir.duplicates import NEAR_RULE

    # The pixels alone decide here: the embedding cosine is taken as high as a copy's.
    return NEAR_RULE.passes(1.0, compare(a, b, rules=(NEAR_RULE,), cosine=1.0))


def test_a_crop_is_found_where_it_was_cut_and_other_photos_are_apart(tmp_path, photos):
    from indexer.structure import align

    whole = photos["astronaut"]
    h, w = whole.shape[:2]
    crop = whole[h // 8: h * 7 // 8, w // 8: w * 7 // 8]  # three quarters of each side, centred
    a, b = _picture(whole, tmp_path / "whole.png"), _picture(crop, tmp_path / "crop.png")
    found = align(a.normalised, b.normalised)
    assert found.score > 0.9 and found.box is not None and found.swapped
    x, y, bw, bh = found.box  # the crop (the template, b) inside the whole picture's thumbnail
    width, height = a.facts.thumb.shape[1], a.facts.thumb.shape[0]
    assert abs(x / width - 1 / 8) < 0.05 and abs(bw / width - 3 / 4) < 0.06
    assert abs(y / height - 1 / 8) < 0.05 and abs(bh / height - 3 / 4) < 0.06
    assert _copies(a, b)
    for other in ("coffee", "chelsea", "camera"):
        assert not _copies(a, _picture(photos[other], tmp_path / f"{other}.png"))


def test_tone_curves_local_tone_maps_and_selective_colour_keep_a_copy_a_copy(tmp_path, photos):
    from skimage.exposure import equalize_adapthist

    for name in ("astronaut", "coffee", "chelsea"):
        photo = photos[name]
        rgb = photo.astype(np.float32) / 255
        edits = {
            "gamma": rgb ** 2.2,  # far from linear: plain correlation of grey levels drops
            "s-curve": rgb - 1.4 * rgb * (1 - rgb) * (2 * rgb - 1),
            "hdr": equalize_adapthist(rgb, kernel_size=max(8, min(rgb.shape[:2]) // 8), clip_limit=0.03),
        }
        grey = np.repeat(np.asarray(Image.fromarray(photo).convert("L"))[..., None], 3, axis=2)
        red = (photo[..., 0].astype(int) - photo[..., 1:].mean(axis=2)) > 30
        edits["selective colour"] = np.where(red[..., None], photo, grey).astype(np.float32) / 255
        original = _picture(photo, tmp_path / f"{name}.png")
        for edit, pixels in edits.items():
            edited = _picture((np.clip(pixels, 0, 1) * 255).astype(np.uint8), tmp_path / f"{name}-{edit}.jpg")
            assert _copies(original, edited), (name, edit)


def test_a_copy_turned_or_mirrored_is_found(tmp_path, photos):
    photo = photos["chelsea"]
    original = _picture(photo, tmp_path / "cat.png")
    for k, pixels in enumerate((np.rot90(photo), np.rot90(photo, 2), photo[:, ::-1])):
        assert _copies(original, _picture(np.ascontiguousarray(pixels), tmp_path / f"turned{k}.jpg")), k


def _page(title: str, words: list[str], seed: int, size: tuple[int, int] = (1280, 800)) -> Image.Image:
    """A documentation page of one web site: the site's header bar, a title, a few lines of text, and a
    lot of white."""
    rng = np.random.default_rng(seed)
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle([0, 0, size[0], 60], fill=(30, 50, 60))
    draw.text((120, 90), title, fill=(20, 20, 20), font=ImageFont.load_default(size=28))
    font = ImageFont.load_default(size=16)
    for n in range(6):
        draw.text((120, 150 + 26 * n), " ".join(rng.choice(words, 9)), fill=(20, 20, 20), font=font)
    return page


WORDS = ["reconstruction", "directory", "reference", "generated", "module", "class", "pattern", "scene",
         "camera", "calibration", "function", "returns", "matrix", "points", "the", "of", "and", "a"]


def test_different_nearly_blank_pages_of_one_site_are_not_copies_but_a_resized_page_is(tmp_path):
    first = _page("sfm_scene Directory Reference", WORDS, 1)
    a = _picture(first, tmp_path / "a.png")
    for n, title in enumerate(("capturesinpattern Directory Reference", "sfm_scene Directory Reference")):
        other = _page(title, WORDS, 2 + n)  # another page, or the same title over other text
        assert not _copies(a, _picture(other, tmp_path / f"other{n}.png")), title
    small = first.resize((960, 600), Image.Resampling.LANCZOS)
    assert _copies(a, _picture(small, tmp_path / "a-small.jpg"))


def test_two_blank_pictures_have_nothing_to_agree_on(tmp_path):
    from indexer.structure import MIN_CONTENT_TILES, Alignment, tile_agreement

    blank = np.full((600, 900, 3), 250, np.uint8)
    a, b = _picture(blank, tmp_path / "one.png"), _picture(blank.copy(), tmp_path / "two.png")
    tiles = tile_agreement(a.facts.detail, b.facts.detail, a.facts.thumb.shape, b.facts.thumb.shape,
                           Alignment(1.0), 32, 3, 0.7)
    assert tiles.content == 0 and tiles.share == 0.0 and MIN_CONTENT_TILES > 0
    assert not _copies(a, b)


@pytest.mark.parametrize("name", ["astronaut", "page"])
def test_stored_facts_decode_to_what_was_computed(tmp_path, photos, name):
    from indexer.image_facts import decode_facts, encode_facts, image_facts, stored_signature

    path = tmp_path / f"{name}.png"
    save_photo(photos[name], path)
    facts = image_facts(path)
    blob = encode_facts(facts)
    again = decode_facts(blob)
    assert len(blob) < 40_000 and again.as_dict() == facts.as_dict()
    assert (again.fine is None) == (facts.fine is None) and again.detail.shape == facts.detail.shape
    assert np.abs(again.thumb - facts.thumb).mean() < 1.0
    assert float(stored_signature(blob).astype(np.float32) @ facts.signature) > 0.999
