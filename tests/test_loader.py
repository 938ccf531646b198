"""Decoding: every supported format, EXIF orientation, draft mode, and each kind of bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cbir.errors import ImageDecodeError
from indexer.loader import decode, open_reduced, read_file
from tests.bad_inputs import make_bad_corpus
from tests.conftest import save_photo


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".gif", ".bmp", ".tif"])
def test_each_format_decodes_to_the_same_picture(photos, tmp_path, ext):
    reference = decode(save_photo(photos["chelsea"], tmp_path / "ref.png").read_bytes()).astype(np.float32)
    pixels = decode(save_photo(photos["chelsea"], tmp_path / f"cat{ext}").read_bytes())
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    # Lossy formats and GIF's palette move pixels a little, never the picture.
    assert np.abs(pixels.astype(np.float32) - reference).mean() < 12


def test_exif_orientation_is_applied(tmp_path):
    # Left half red, right half blue; EXIF 6 means "rotate 90 degrees clockwise to view".
    array = np.zeros((300, 400, 3), np.uint8)
    array[:, :200] = (255, 0, 0)
    array[:, 200:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(array).save(path, exif=exif, quality=95)
    upright = decode(path.read_bytes())
    assert upright[20, 112, 0] > 200 and upright[20, 112, 2] < 60  # red now on top
    assert upright[200, 112, 2] > 200 and upright[200, 112, 0] < 60  # blue at the bottom


def test_large_jpeg_is_decoded_at_reduced_scale(photos, tmp_path):
    big = Image.fromarray(photos["chelsea"]).resize((4000, 3000))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=85)
    with open_reduced(buffer.getvalue()) as image:
        assert image.size == (500, 375)  # 1/8 scale, still above 224 on both sides
    assert decode(buffer.getvalue()).shape == (224, 224, 3)


def test_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "transparent.png"
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(path)
    assert decode(path.read_bytes()).min() == 255


def test_sixteen_bit_greyscale_is_scaled(tmp_path):
    array = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    pixels = decode(path.read_bytes())
    assert pixels.min() < 10 and pixels.max() > 245


def test_every_bad_file_gets_its_reason(photos, tmp_path):
    expected = make_bad_corpus(tmp_path / "bad", photos["chelsea"])
    for name, reason in expected.items():
        path = tmp_path / "bad" / name
        if path.is_symlink() or name == "pipe.jpg":
            continue  # the walker reports these before any read (see test_walker)
        with pytest.raises(ImageDecodeError) as info:
            decode(read_file(path).data)
        assert info.value.reason == reason, (name, info.value)


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * 2048)
    with pytest.raises(ImageDecodeError, match="file too large"):
        read_file(path, max_bytes=1024)
