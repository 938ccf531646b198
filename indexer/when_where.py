"""When and where a photo was taken, as its file says: for the library's timeline and `cbir find --taken`.

The time is EXIF's DateTimeOriginal (with OffsetTimeOriginal when the camera
wrote one), else the file's modification time, marked as such. The camera is
EXIF's Make and Model. A GPS position becomes a place, "town, country", from
the nearest of GeoNames' towns of 1,000 people or more: the table ships with
the ``reverse_geocoder`` package and is searched offline; country names come
from ``pycountry``.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

from PIL import Image

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TAKEN, _OFFSET, _MAKE, _MODEL = 36867, 36881, 271, 272


@dataclass(frozen=True)
class WhenWhere:
    taken_at: str | None  # "YYYY-MM-DD HH:MM:SS" as the clock showed it where the photo was taken
    taken_source: str | None  # "exif", or "file" (the file's modification time, in this machine's zone)
    offset: str | None  # the clock's offset from UTC, "+02:00", when the camera wrote it
    camera: str | None
    latitude: float | None
    longitude: float | None

    def with_file_time(self, mtime_ns: int) -> WhenWhere:
        """This, with the file's time standing in when the photo says nothing of when it was taken."""
        if self.taken_at is not None:
            return self
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime_ns / 1e9))
        return WhenWhere(stamp, "file", None, self.camera, self.latitude, self.longitude)


NOWHERE = WhenWhere(None, None, None, None, None, None)


def read_when_where(exif: Image.Exif) -> WhenWhere:
    """What a photo's EXIF says of when, with what and where it was taken (None for what it does not say)."""
    try:
        details = exif.get_ifd(_EXIF_IFD)
    except Exception:  # a malformed block costs the facts it holds, not the photo
        details = {}
    taken = _taken(details.get(_TAKEN))
    offset = _text(details.get(_OFFSET))
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    camera = model if make and model and model.lower().startswith(make.lower().split()[0]) else " ".join(
        p for p in (make, model) if p) or None
    latitude, longitude = _position(exif)
    return WhenWhere(taken, "exif" if taken else None, offset if offset and len(offset) <= 6 else None, camera,
                     latitude, longitude)


def places(positions: list[tuple[float, float]]) -> list[str]:
    """The nearest town to each (latitude, longitude), as "town, country"."""
    if not positions:
        return []
    with _LOCK:
        found = _geocoder().query(positions)
    return [f"{p['name']}, {_country(p['cc'])}" for p in found]


_LOCK = threading.Lock()


@functools.cache
def _geocoder():
    import reverse_geocoder

    return reverse_geocoder.RGeocoder(mode=1, verbose=False)


@functools.cache
def _country(code: str) -> str:
    import pycountry

    country = pycountry.countries.get(alpha_2=code)
    return getattr(country, "common_name", None) or getattr(country, "name", None) or code


def _taken(value: object) -> str | None:
    text = _text(value)
    if not text or len(text) < 19 or text.startswith("0000"):
        return None
    stamp = f"{text[0:4]}-{text[5:7]}-{text[8:10]} {text[11:19]}"
    try:
        time.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return stamp


def _position(exif: Image.Exif) -> tuple[float | None, float | None]:
    try:
        gps = exif.get_ifd(_GPS_IFD)
        latitude, longitude = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
    except Exception:
        return None, None
    if latitude is None or longitude is None or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None
    if latitude == 0 and longitude == 0:
        return None, None  # what cameras without a fix write
    return latitude, longitude


def _degrees(value: object, ref: object) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    d, m, s = (float(v) for v in value)
    sign = -1.0 if _text(ref) in ("S", "W") else 1.0
    return round(sign * (d + m / 60 + s / 3600), 6)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in str(value)).split()) if value is not None else ""
    return text or None
