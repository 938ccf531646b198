"""`cbir duplicates` against imagededup's hashes: pair precision, recall and group purity, same data, same run;
then its cost on a large library.

    python -m benchmarks.duplicates [--imagededup-python PY] [--files 10000 [--catalog 100000]] [--json OUT]

Data (all real photos, from ../shared and the extra photos):
- variants: 82 distinct development photos (food, screenshots, documents,
  people, landscapes, other), each saved the ways real life makes copies:
  JPEG re-encoded at quality 30 and 55-85, downscaled to 25-50%, cropped to
  70-95%, stored sideways with an EXIF rotation, brightness and contrast
  +-20%, a caption watermark, one byte-for-byte second copy, and the tone
  edits of ``tone_edits`` (a curve, an HDR-style local tone map, selective
  colour) and an AVIF re-encode; 13 files per photo;
- real groups: ../shared/data/near_duplicates (29 groups; burst, stereo and
  video frames count only at the ``similar`` level) and the copies the
  gallery already holds (GALLERY_COPIES, labelled by hand);
- distractors: every other gallery photo and page (food, people, landscape,
  screenshots of many pages of the same manuals and web sites, scanned
  documents), the extra photos, and ../shared/data/other, so that false
  pairs have every chance.
Originals and real groups are split in two halves (seeded): cbir's rule is
chosen on the first (benchmarks.duplicates_rules: every look at every
candidate pair, then a grid of thresholds), and figures are given for the
second, held out, with the distractors; ``page_groups`` counts groups that
join two different gallery pages. imagededup (PHash, DHash, WHash, AHash, run
in the Python given by --imagededup-python, since it needs PyTorch) gets its
``max_distance_threshold`` chosen the same way, best F1 on the first half
over its documented range. With --files N and --catalog M, `cbir duplicates`
is timed on about N real files and on an M-image catalog made from them
(benchmarks.duplicates_scale).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from benchmarks.common import add_extra_option, emit_json, ensure_extra_photos

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KIN = ("stereo", "frame", "view", "framing", "MPO", "cam frame")
HASHES = ("PHash", "DHash", "WHash", "AHash")


def make_variants(sources: list[Path], out: Path, seed: int) -> None:
    from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

    rng = random.Random(seed)
    for i, path in enumerate(sources):
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        group = out / f"g{i:03d}"
        group.mkdir(parents=True)
        image.save(group / "original.jpg", quality=95)
        shutil.copyfile(group / "original.jpg", group / "saved_twice.jpg")
        image.save(group / "reencode_q30.jpg", quality=30)
        image.save(group / "reencode_mid.jpg", quality=rng.randint(55, 85))
        f = rng.uniform(0.25, 0.5)
        image.resize((max(32, int(image.width * f)), max(32, int(image.height * f))),
                     Image.Resampling.LANCZOS).save(group / "downscaled.jpg", quality=85)
        keep = rng.uniform(0.7, 0.95)
        w, h = image.size
        cw, ch = int(w * keep), int(h * keep)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image.crop((x, y, x + cw, y + ch)).save(group / "cropped.jpg", quality=90)
        exif = Image.Exif()
        exif[0x0112] = 6  # shown upright by turning the stored pixels 90 degrees clockwise
        image.rotate(90, expand=True).save(group / "exif_rotated.jpg", quality=90, exif=exif)
        edited = ImageEnhance.Brightness(image).enhance(rng.choice([0.8, 1.2]))
        ImageEnhance.Contrast(edited).enhance(rng.choice([0.8, 1.2])).save(group / "brightness.jpg", quality=90)
        marked = image.copy()
        ImageDraw.Draw(marked).text((image.width * 0.05, image.height * 0.88), "(c) my holiday 2024",
                                    fill=(255, 255, 255), font=ImageFont.load_default(size=max(12, image.width // 25)))
        marked.save(group / "watermark.jpg", quality=90)
        tone_edits(image, rng, group)


def tone_edits(image, rng: random.Random, group: Path) -> None:
    """What photo editors do to tones, none of it a linear change of brightness: a curve, a local (HDR-style)
    tone map, a selective-colour edit, and an AVIF re-encode."""
    import numpy as np
    from PIL import Image
    from skimage.exposure import equalize_adapthist

    rgb = np.asarray(image, np.float32) / 255.0
    gamma = rng.choice([0.45, 0.6, 1.7, 2.2])
    curve = rgb ** gamma
    curve = curve - 4 * rng.uniform(0.15, 0.4) * curve * (1 - curve) * (2 * curve - 1)  # and a monotone S-curve
    Image.fromarray((np.clip(curve, 0, 1) * 255).astype(np.uint8)).save(group / "tone_curve.jpg", quality=90)
    local = equalize_adapthist(rgb, kernel_size=max(8, min(rgb.shape[:2]) // 6), clip_limit=rng.uniform(0.02, 0.05))
    Image.fromarray((np.clip(local, 0, 1) * 255).astype(np.uint8)).save(group / "hdr_tonemap.jpg", quality=90)
    hsv = np.asarray(image.convert("HSV"), np.float32)
    keep = np.abs(((hsv[..., 0] - rng.uniform(0, 255) + 128) % 256) - 128) < 32  # one hue band keeps its colour
    grey = np.asarray(image.convert("L").convert("RGB"), np.float32)
    selective = np.where(keep[..., None], np.asarray(image, np.float32), grey)
    Image.fromarray(selective.astype(np.uint8)).save(group / "selective_colour.jpg", quality=90)
    image.save(group / "avif.avif", quality=rng.randint(40, 70))


# Copies already in the gallery, found by looking at every group `cbir duplicates --level similar` and an
# earlier, looser version of it proposed there (the same page scanned or rendered several ways, two frames
# of one clip). Everything else in the gallery's
# screenshot and receipt folders counts as distinct: pages of one manual or web site look alike but differ.
GALLERY_COPIES = {
    "basketball frames": ("similar", ["people/deb_opencv-doc__basketball1.png",
                                      "people/deb_opencv-doc__basketball2.png"]),
    "lucasta page": ("near", ["receipt/debsrc_leptonlib__lucasta.047.jpg",
                              "receipt/debsrc_leptonlib__lucasta.150.jpg"]),
    "unpaper sheet": ("near", ["receipt/debsrc_unpaper__imgsrcE001.png", "receipt/debsrc_unpaper__imgsrcE002.png"]),
    "baiona map": ("near", ["receipt/pypi-sdist_ocrmypdf__palette-1.png", "receipt/pypi-sdist_ocrmypdf__baiona.png",
                            "receipt/pypi-sdist_ocrmypdf__3small-1.png"]),
    "linn leaflet": ("near", [f"receipt/pypi-sdist_ocrmypdf__{n}.png" for n in
                              ("poster-1", "linn", "cardinal-1", "jbig2-1", "skew-1", "rotated_skew-1")]),
    # one test page scanned upright, upside down and sideways
    "phototest page": ("near", [f"receipt/debsrc_tesseract__{n}" for n in
                                ("phototest.tif", "phototest-rotated-180.png", "phototestrot.tif")]),
    # a half-width crop of one of the extra photos (benchmarks/extra_photos.py)
    "obama portrait": ("near", ["people/pypi-sdist_face_recognition__obama_partial_face.jpg",
                                "EXTRA/people/pypi_sdist_face_recognition__obama.jpg"]),
}


def build(work: Path, shared: Path, extra: Path, seed: int) -> tuple[Path, dict[str, dict]]:
    """The photo tree and the truth: relative path -> {identity, kind, half, bytes}."""
    rng = random.Random(seed)
    photos = work / "photos"
    gallery = shared / "gallery"
    def located(name: str) -> Path:
        return extra / name.removeprefix("EXTRA/") if name.startswith("EXTRA/") else gallery / name

    in_gallery_groups = {located(name) for _, names in GALLERY_COPIES.values() for name in names}
    sources: list[Path] = []
    for cls, n in (("food", 20), ("screenshot", 15), ("receipt", 12), ("people", 8), ("landscape", 7)):
        files = sorted(p for p in (gallery / cls).iterdir() if p not in in_gallery_groups)
        rng.shuffle(files)
        sources += files[:n]
    others = sorted(p for p in (shared / "other").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rng.shuffle(others)
    sources += others[:20]
    make_variants(sources, photos / "variants", seed)
    truth: dict[str, dict] = {}
    halves = {f"v:g{i:03d}": i % 2 for i in range(len(sources))}
    # Which gallery page a file shows (None: a photo): the target "two different documents never group".
    pages = {f"v:g{i:03d}": str(path) if path.parent.name in ("screenshot", "receipt") else None
             for i, path in enumerate(sources)}
    for path in (photos / "variants").rglob("*.*"):
        group = f"v:{path.parent.name}"
        truth[str(path.relative_to(photos))] = {"identity": group, "kind": "near", "half": halves[group],
                                                "bytes": _md5(path), "page": pages[group]}
    rows = list(csv.DictReader(open(shared / "near_duplicates" / "manifest.csv")))
    real = [(f"n:{r['group']}", "similar" if any(k in r["relation"] for k in KIN) else "near",
             shared / "near_duplicates" / r["path"], Path("near") / r["path"]) for r in rows]
    real += [(f"g:{group}", kind, located(name), Path("gallery") / name)
             for group, (kind, names) in GALLERY_COPIES.items() for name in names]
    groups = sorted({identity for identity, *_ in real})
    for identity, kind, source, relative in real:
        target = photos / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        page = identity if identity.startswith("g:") and relative.parent.name in ("screenshot", "receipt") else None
        truth[str(relative)] = {"identity": identity, "kind": kind, "half": groups.index(identity) % 2,
                                "bytes": _md5(target), "page": page}
    # Distractors: every other photo and page, each once. A photo that is the same picture as one already
    # taken (the same bytes, or re-encoded: 32-pixel grey versions correlating 0.98) would be an unlabelled
    # copy, so it is left out.
    taken = [_tiny(p) for p in sources] + [_tiny(photos / r) for *_, r in real]
    seen = {_md5(p) for p in sources}
    pools = [gallery / c for c in ("food", "people", "landscape", "screenshot", "receipt")] + [shared / "other", extra]
    left_out = 0
    for pool in pools:
        for path in sorted(p for p in pool.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp",
                                                                               ".tif")):
            digest = _md5(path)
            if digest in seen or path in in_gallery_groups:
                continue
            seen.add(digest)
            tiny = _tiny(path)
            if pool.name not in ("screenshot", "receipt") and max(float(tiny @ t) for t in taken) >= 0.98:
                left_out += 1
                continue
            taken.append(tiny)
            target = photos / "distractors" / pool.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            truth[str(target.relative_to(photos))] = {
                "identity": f"d:{digest}", "kind": "distinct", "half": None, "bytes": digest,
                "page": str(path) if pool.name in ("screenshot", "receipt") else None}
    print(f"{left_out} distractor(s) left out as the same picture as another file", file=sys.stderr)
    return photos, truth


def _tiny(path: Path):
    """A 32x32 grey version, centred and unit length: two files of one picture correlate near 1."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        grey = np.asarray(ImageOps.exif_transpose(image).convert("L").resize((32, 32)), np.float64).ravel()
    grey -= grey.mean()
    return grey / max(float(np.linalg.norm(grey)), 1e-9)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def true_pairs(truth: dict[str, dict], half: int, level: str) -> set[frozenset]:
    """Pairs that ``level`` should join: the same bytes (exact), the same photo (near), or also the
    same scene a moment apart (similar)."""
    by_identity: dict[str, list[str]] = defaultdict(list)
    for path, t in truth.items():
        if t["half"] == half and (level == "similar" or t["kind"] == "near"):
            by_identity[t["bytes"] if level == "exact" else t["identity"]].append(path)
    return {frozenset(p) for members in by_identity.values() for p in combinations(sorted(members), 2)}


def score(groups: list[list[str]], truth: dict[str, dict], half: int, level: str) -> dict:
    """Pair precision and recall, and group purity, over the held-out half and the distractors."""
    allowed = {p for p, t in truth.items() if t["half"] in (half, None)}
    predicted = set()
    pure = counted = 0
    for group in groups:
        members = [m for m in group if m in allowed]
        if len(members) < 2:
            continue
        counted += 1
        pure += len({truth[m]["identity"] for m in members}) == 1
        predicted |= {frozenset(p) for p in combinations(sorted(members), 2)}
    truth_pairs = true_pairs(truth, half, level)
    hits = len(predicted & truth_pairs)
    return {"precision": round(hits / len(predicted), 4) if predicted else 0.0,
            "recall": round(hits / len(truth_pairs), 4) if truth_pairs else 0.0,
            "pairs_predicted": len(predicted), "pairs_true": len(truth_pairs),
            "group_purity": round(pure / counted, 4) if counted else 1.0, "groups": counted}


def cbir_groups(photos: Path, env: dict, level: str) -> tuple[list[list[str]], dict]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cbir", "duplicates", "--level", level, "--json", "-q"], env=env,
                          capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    cost = {"seconds": round(time.monotonic() - started, 1), "images": report["images"],
            "candidate_pairs": report["candidate_pairs"], "checked_pairs": report["checked_pairs"]}
    return [[str(Path(m["path"]).relative_to(photos)) for m in g["members"]] for g in report["groups"]], cost


def imagededup_groups(python: str, photos: Path, method: str, threshold: int) -> list[list[str]]:
    code = (
        "import json, sys\n"
        f"from imagededup.methods import {method}\n"
        f"hasher = {method}(verbose=False)\n"
        f"found = hasher.find_duplicates(image_dir={str(photos)!r}, max_distance_threshold={threshold}, "
        "recursive=True)\n"
        "print(json.dumps(found))\n"
    )
    found = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
                       .stdout.strip().splitlines()[-1])
    # imagededup answers per file; groups are the connected components of its pairs, as in cbir
    from cbir.duplicates import components

    return components((a, b) for a, dups in found.items() for b in dups)


def page_groups(groups: list[list[str]], truth: dict[str, dict]) -> int:
    """Groups that join two different gallery pages (screenshots, scans, receipts): the issue wants none."""
    return sum(len({truth[m].get("page") for m in g if m in truth} - {None}) > 1 for g in groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    add_extra_option(parser)
    parser.add_argument("--imagededup-python", default=None,
                        help="a Python with imagededup installed (it needs PyTorch); left out when not given")
    parser.add_argument("--files", type=int, default=0,
                        help="also time `cbir duplicates` on about N real files (variants of every photo)")
    parser.add_argument("--catalog", type=int, default=0,
                        help="and on an N-image catalog made from those files (needs --files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    ensure_extra_photos(args.extra)
    work = Path(tempfile.mkdtemp(prefix="cbir-dup-bench-"))
    photos, truth = build(work, args.shared, args.extra, args.seed)
    print(f"{len(truth)} files: {sum(t['kind'] != 'distinct' for t in truth.values())} in groups, "
          f"{sum(t['kind'] == 'distinct' for t in truth.values())} distractors", file=sys.stderr)
    env = dict(os.environ, CBIR_HOME=str(work / "home"))
    subprocess.run([sys.executable, "-m", "cbir", "index", str(photos), "-q"], env=env, check=True)
    result: dict = {"files": len(truth), "held_out_half": 1, "methods": {}}
    from benchmarks.duplicates_rules import choose, measure
    from cbir.duplicates import RULES

    measured, relative, exact = measure(work / "home" / "index", photos)
    result["rule_choice"] = {**choose(measured, relative, exact, truth, lambda p: truth.get(p, {}).get("page")),
                             "shipped": {level: [vars(r) for r in rules] for level, rules in RULES.items()}}
    for level in ("near", "similar", "exact"):
        groups, cost = cbir_groups(photos, env, level)
        result["methods"][f"cbir {level}"] = {**score(groups, truth, 1, level),
                                              "tuning_half": score(groups, truth, 0, level),
                                              "page_groups": page_groups(groups, truth), **cost}
    if args.imagededup_python:
        for method in HASHES:
            tuning = {t: score(imagededup_groups(args.imagededup_python, photos, method, t), truth, 0, "near")
                      for t in (0, 2, 4, 6, 8, 10, 12, 14, 16, 20)}
            best = max(tuning, key=lambda t: (2 * tuning[t]["precision"] * tuning[t]["recall"]
                                              / max(tuning[t]["precision"] + tuning[t]["recall"], 1e-9)))
            groups = imagededup_groups(args.imagededup_python, photos, method, best)
            result["methods"][f"imagededup {method}"] = {**score(groups, truth, 1, "near"),
                                                         "page_groups": page_groups(groups, truth),
                                                         "max_distance_threshold": best}
        result["imagededup_cnn"] = _try_cnn(args.imagededup_python)
    if args.files:
        from benchmarks.duplicates_scale import catalog_test, files_test

        result["scale_files"] = files_test(args.shared, args.extra, work, args.files, args.seed)
        if args.catalog:
            result["scale_catalog"] = catalog_test(Path(result["scale_files"]["index_dir"]), work, args.catalog,
                                                   args.seed)
    print(f"\n{'method':<20}{'precision':>10}{'recall':>8}{'purity':>8}{'groups':>8}{'pages':>7}   (held-out half; "
          "near level unless named)")
    for name, r in result["methods"].items():
        print(f"{name:<20}{r['precision']:>10.4f}{r['recall']:>8.4f}{r['group_purity']:>8.4f}{r['groups']:>8}"
              f"{r['page_groups']:>7}"
              + (f"   threshold {r['max_distance_threshold']}" if "max_distance_threshold" in r else ""))
    chosen = result["rule_choice"]["chosen"]
    print(f"\nrule chosen on the tuning half: {chosen['rule']} (tuning P/R {chosen['tuning']['precision']}/"
          f"{chosen['tuning']['recall']}, held out {chosen['held_out']['precision']}/{chosen['held_out']['recall']})")
    for key in ("scale_files", "scale_catalog"):
        if key in result:
            print(f"{key}: {result[key]}")
    emit_json(result, args.json)


def _try_cnn(python: str) -> str:
    code = "from imagededup.methods import CNN\nCNN(verbose=False)\nprint('loaded')\n"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        return "loaded"
    last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return f"could not load its weights here (no internet): {last[:200]}"


if __name__ == "__main__":
    main()
