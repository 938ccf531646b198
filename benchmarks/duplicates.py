"""`cbir duplicates` against imagededup's hashes: pair precision, recall and group purity, same data, same run.

    python -m benchmarks.duplicates [--imagededup-python PY] [--scale 100000] [--json OUT]

Data (all real photos, from ../shared):
- variants: 82 distinct development photos (food, screenshots, documents,
  people, landscapes, other), each saved the ways real life makes copies:
  JPEG re-encoded at quality 30 and 55-85, downscaled to 25-50%, cropped to
  70-95%, stored sideways with an EXIF rotation, brightness and contrast
  +-20%, a caption watermark, and one byte-for-byte second copy; 9 files
  per photo;
- real groups: ../shared/data/near_duplicates (29 groups; burst, stereo and
  video frames count only at the ``similar`` level) and the copies the
  gallery already holds (GALLERY_COPIES, labelled by hand);
- distractors: every other gallery photo and page (food, people, landscape,
  screenshots of many pages of the same manuals and web sites, scanned
  documents), the extra photos, and ../shared/data/other, so that false
  pairs have every chance.
Originals and real groups are split in two halves (seeded): cbir's
thresholds were chosen on the first, and figures are given for the second,
held out, with the distractors. imagededup (PHash, DHash, WHash, AHash, run
in the Python given by --imagededup-python, since it needs PyTorch) gets its
``max_distance_threshold`` chosen the same way, best F1 on the first half
over its documented range. With --scale N, the candidate search of
`cbir duplicates` (FAISS nearest neighbours over every vector) is timed on N
synthetic vectors in a real cbir index.
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

from benchmarks.common import emit_json

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
    for path in (photos / "variants").rglob("*.jpg"):
        group = f"v:{path.parent.name}"
        truth[str(path.relative_to(photos))] = {"identity": group, "kind": "near", "half": halves[group],
                                                "bytes": _md5(path)}
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
        truth[str(relative)] = {"identity": identity, "kind": kind, "half": groups.index(identity) % 2,
                                "bytes": _md5(target)}
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
            truth[str(target.relative_to(photos))] = {"identity": f"d:{digest}", "kind": "distinct", "half": None,
                                                      "bytes": digest}
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


def scale_test(n: int, work: Path) -> dict:
    """Time the candidate search on ``n`` synthetic vectors in a real cbir index."""
    from benchmarks.query_latency import build_index
    from cbir.duplicates import NEAR_RULE, NEIGHBOURS, NPROBE, _candidate_pairs
    from index_store.catalog import CatalogReader

    index_dir = work / f"scale-{n}"
    build_index(index_dir, n, "synthetic-model")
    reader = CatalogReader.open(index_dir)
    try:
        started = time.monotonic()
        pairs = _candidate_pairs(reader, NEAR_RULE[0], lambda path: True)
        seconds = time.monotonic() - started
        kind = reader.index_plan().description
    finally:
        reader.close()
    return {"vectors": n, "index": kind, "lists_probed": NPROBE, "neighbours": NEIGHBOURS,
            "candidate_search_s": round(seconds, 1),
            "candidate_pairs": len(pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--extra", type=Path, default=Path(tempfile.gettempdir()) / "cbir-extra-photos")
    parser.add_argument("--imagededup-python", default=None,
                        help="a Python with imagededup installed (it needs PyTorch); left out when not given")
    parser.add_argument("--scale", type=int, default=0, help="also time the candidate search on N vectors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (args.extra / "manifest.csv").is_file():
        subprocess.run([sys.executable, "-m", "benchmarks.extra_photos", str(args.extra)], check=True, cwd=ROOT)
    work = Path(tempfile.mkdtemp(prefix="cbir-dup-bench-"))
    photos, truth = build(work, args.shared, args.extra, args.seed)
    print(f"{len(truth)} files: {sum(t['kind'] != 'distinct' for t in truth.values())} in groups, "
          f"{sum(t['kind'] == 'distinct' for t in truth.values())} distractors", file=sys.stderr)
    env = dict(os.environ, CBIR_HOME=str(work / "home"))
    subprocess.run([sys.executable, "-m", "cbir", "index", str(photos), "-q"], env=env, check=True)
    result: dict = {"files": len(truth), "held_out_half": 1, "methods": {}}
    for level in ("near", "similar", "exact"):
        groups, cost = cbir_groups(photos, env, level)
        result["methods"][f"cbir {level}"] = {**score(groups, truth, 1, level),
                                              "tuning_half": score(groups, truth, 0, level), **cost}
    if args.imagededup_python:
        for method in HASHES:
            tuning = {t: score(imagededup_groups(args.imagededup_python, photos, method, t), truth, 0, "near")
                      for t in (0, 2, 4, 6, 8, 10, 12, 14, 16, 20)}
            best = max(tuning, key=lambda t: (2 * tuning[t]["precision"] * tuning[t]["recall"]
                                              / max(tuning[t]["precision"] + tuning[t]["recall"], 1e-9)))
            groups = imagededup_groups(args.imagededup_python, photos, method, best)
            result["methods"][f"imagededup {method}"] = {**score(groups, truth, 1, "near"),
                                                         "max_distance_threshold": best}
        result["imagededup_cnn"] = _try_cnn(args.imagededup_python)
    if args.scale:
        result["scale"] = scale_test(args.scale, work)
    print(f"\n{'method':<20}{'precision':>10}{'recall':>8}{'purity':>8}{'groups':>8}   (held-out half; near "
          "level unless named)")
    for name, r in result["methods"].items():
        print(f"{name:<20}{r['precision']:>10.4f}{r['recall']:>8.4f}{r['group_purity']:>8.4f}{r['groups']:>8}"
              + (f"   threshold {r['max_distance_threshold']}" if "max_distance_threshold" in r else ""))
    if "scale" in result:
        s = result["scale"]
        print(f"\ncandidate search on {s['vectors']} vectors ({s['index']}, {s['lists_probed']} lists probed, "
              f"{s['neighbours']} neighbours each): "
              f"{s['candidate_search_s']} s, {s['candidate_pairs']} pairs")
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
