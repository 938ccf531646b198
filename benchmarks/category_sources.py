"""Categories on photos from sources the model never saw: leave one source out, over every photo we have.

    python -m benchmarks.category_sources [--gallery DIR] [--extra DIR] [--other DIR] [--json OUT]

The photos: the development gallery (five categories), the extra photos of
``python -m benchmarks.extra_photos`` (fetched into --extra when missing) and
the photos of none of the categories (../shared/data/other). Each photo's
source is the project it came from, read from the manifests: the package name
without its version, and without the suffixes that split one project into
several packages (``opencv-doc`` and the ``opencv`` source package are one
source; so are ``lomiri-wallpapers-16.04`` and ``-20.04``). Every source is
held out in turn; the head is fitted with cbir's own code
(training.head.fit_categorizer, on the photos plus two augmented copies, as
`cbir train --fine-tune head` fits it) on every other source, minus any photo
whose content (MD5) equals a held-out one, since packages share photos.
Pooled over the folds, every photo is predicted by a head that never saw its
source.

Reported per category: precision and recall of what `cbir clean` moves at the
default threshold, and the best recall at which precision stays at or above
0.95 (from the precision-recall curve); the share of no-category photos
moved; and per held-out source its recall and what it moved wrongly.

Heads compared (``--heads``), each with the energy gate at ``--gate`` (the
share of validation photos of the categories that pass it):

- ``embedding``: the cosine logistic head on the unit embedding (what cbir
  shipped before);
- ``embedding+scene``: what cbir ships: the same head reading ImageNet's
  class log-probabilities beside the embedding, computed from the unit
  embedding at a fixed length (indexer.categorizer.head_features);
- ``scene-own-length``: the log-probabilities the network itself gives, at
  each photo's own feature length (needs the length stored beside a vector);
- ``scene-linear``: the ImageNet classifier's centred kernel applied to the
  unit embedding, no softmax (linear in the embedding);
- ``source-calibrated``: the embedding head, its temperature and gate fitted
  on photos of whole sources held out of its training (a group split) rather
  than on a random fifth.

The JSON in benchmarks/results/category_sources.json is from
``--gate 0.97`` and ``--gate 0.93`` runs (the old and the new default).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import add_extra_option, emit_json, ensure_extra_photos, imagenet_classifier, machine

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HEADS = ["embedding", "embedding+scene", "scene-own-length", "scene-linear", "source-calibrated"]
PRECISION_TARGET = 0.95
# Packages of one project: the name's suffix is packaging, not a different photographer.
ALIASES = {"leptonlib": "leptonica", "plasma-workspace-wallpapers": "plasma-workspace", "tuxpaint-stamps": "tuxpaint",
           "qtdeclarative5": "qt5", "qtwebengine5": "qt5", "libelementary": "efl",
           "libjs-jquery-backstretch": "jquery-backstretch"}


def project_of(source: str) -> str:
    """The project a manifest's source names: 'deb:opencv-doc 4.6.0+dfsg-12' -> 'opencv'."""
    if source.startswith("local render"):
        # Pages rendered here: the renders of one set of documents are one source.
        return "render:" + re.findall(r"(?:deb|pypi|npm):([\w.@/-]+)", source.split(" of ", 1)[1])[0]
    name = re.split(r"[\s(]", source.split(":", 1)[1], maxsplit=1)[0]
    for _ in range(2):  # 'tuxpaint-stamps-default', 'gimp-help-en'
        name = re.sub(r"-(doc|data|default|en|examples|common|\d+\.\d+)$", "", name)
    return ALIASES.get(name, name)


def collect(folders: list[tuple[Path, bool]]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(paths, labels, projects, md5s) from each folder's manifest.csv; labels are "other" for negatives."""
    paths, labels, projects, md5s = [], [], [], []
    for folder, is_other in folders:
        with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                paths.append(str(folder / row["path"]))
                labels.append("other" if is_other else row["category"])
                projects.append(project_of(row["source"]))
                md5s.append(row["md5"])
    return paths, labels, projects, md5s


def embed_all(paths: list[str], copies: int, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit features (n, 2048), ``copies`` augmented versions (n, copies, 2048), and ImageNet log-probabilities
    of both ((n, 1 + copies, 1000))."""
    if cache.is_file():
        data = np.load(cache)
        if list(data["paths"]) == paths:
            return data["plain"], data["augmented"], data["imagenet"]
    from indexer.engines.load import load_embedder
    from indexer.loader import load_image
    from training.augment import augment, build_augmenter

    embedder = load_embedder(None, "imagenet")
    augmenter = build_augmenter(0)
    plain, augmented, imagenet = [], [], []
    for start in range(0, len(paths), 16):
        pixels = np.stack([load_image(p)[0] for p in paths[start : start + 16]])
        runs = [embedder.embed(pixels), *(embedder.embed(augment(augmenter, pixels)) for _ in range(copies))]
        plain.append(runs[0].vectors)
        augmented.append(np.stack([r.vectors for r in runs[1:]], 1))
        imagenet.append(np.stack([np.log(np.maximum(r.imagenet_probs, 1e-6)) for r in runs], 1).astype(np.float16))
        print(f"embedded {min(start + 16, len(paths))}/{len(paths)}", file=sys.stderr, flush=True)
    result = np.concatenate(plain), np.concatenate(augmented), np.concatenate(imagenet)
    np.savez(cache, paths=np.array(paths), plain=result[0], augmented=result[1], imagenet=result[2])
    return result


def features(head: str, unit: np.ndarray, log_probs: np.ndarray) -> np.ndarray:
    """The benchmark's own variants' inputs; cbir's heads take the unit embedding (and its scene)."""
    if head == "scene-linear":
        kernel = imagenet_classifier()[0]
        scene = unit @ (kernel - kernel.mean(axis=1, keepdims=True))
    elif head == "scene-own-length":
        scene = log_probs.astype(np.float32) - log_probs.astype(np.float32).mean(axis=1, keepdims=True)
    else:
        return unit
    scene /= np.maximum(np.linalg.norm(scene, axis=1, keepdims=True), 1e-6)
    # fit_categorizer normalises its input: the two unit blocks then weigh the same.
    return np.concatenate([unit, scene], axis=1)


def hold_out(head: str, plain, augmented, imagenet, labels, projects, md5s, classes, seed: int) -> np.ndarray:
    """(n, classes + other) probabilities, each photo's from the fold that held its source out."""
    from training.head import fit_categorizer

    outputs = [*classes, "other"]
    probs = np.zeros((len(labels), len(outputs)), np.float32)
    copies = augmented.shape[1]
    for source in sorted(set(projects)):
        held = projects == source
        train = np.flatnonzero(~held & ~np.isin(md5s, md5s[held]))
        rng = np.random.default_rng(seed)
        if head == "source-calibrated":
            # Validation photos are whole sources too, so the temperature and gate see a source shift.
            others = sorted(set(projects[train]))
            val_sources = set(rng.choice(others, size=max(1, len(others) // 5), replace=False))
            is_val = np.isin(projects[train], list(val_sources))
        else:
            is_val = rng.random(len(train)) < 0.2
        val, fit = train[is_val], train[~is_val]
        present = [c for c in classes if c in set(labels[fit])]
        tx = np.concatenate([features(head, plain[fit], imagenet[fit, 0]),
                             *(features(head, augmented[fit, c], imagenet[fit, 1 + c]) for c in range(copies))])
        ty = list(np.tile(labels[fit], 1 + copies))
        categorizer = fit_categorizer(tx, ty, features(head, plain[val], imagenet[val, 0]), list(labels[val]),
                                      present, scene=imagenet_classifier() if head == "embedding+scene" else None)
        fold = categorizer.probabilities(features(head, plain[held], imagenet[held, 0]))
        for j, name in enumerate(categorizer.outputs):
            probs[held, outputs.index(name)] = fold[:, j]
        print(f"  {head}: held out {source} ({int(held.sum())} photos)", file=sys.stderr, flush=True)
    return probs


def summarise(probs: np.ndarray, labels: np.ndarray, projects: np.ndarray, classes: list[str],
              threshold: float) -> dict:
    from training.open_set_metrics import open_set_report, pr_curves

    outputs = [*classes, "other"]
    report = open_set_report(list(labels), probs, outputs, threshold)
    curves = pr_curves(list(labels), probs, outputs)
    best = {}
    for c in classes:
        ok = [p["recall"] for p in curves[c] if p["precision"] is not None and p["precision"] >= PRECISION_TARGET]
        best[c] = max(ok, default=0.0)
    predicted = np.asarray(outputs)[probs.argmax(axis=1)]
    moved = (predicted != "other") & (probs.max(axis=1) >= threshold)
    per_source = []
    for source in sorted(set(projects)):
        mine = projects == source
        known = mine & (labels != "other")
        per_source.append({
            "source": source, "photos": int(mine.sum()),
            "classes": {c: int(n) for c, n in zip(*np.unique(labels[mine], return_counts=True), strict=True)},
            "recall": round(float((moved & (predicted == labels))[known].mean()), 3) if known.any() else None,
            "moved_wrongly": int((mine & moved & (predicted != labels)).sum()),
        })
    return {"at_threshold": {c: report.moved[c] for c in classes}, "other_moved": report.other_moved,
            "recall_at_precision_0.95": best, "per_source": per_source}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "data"
    parser.add_argument("--gallery", type=Path, default=shared / "gallery")
    parser.add_argument("--other", type=Path, default=shared / "other")
    add_extra_option(parser)
    parser.add_argument("--heads", default=",".join(HEADS), help=f"comma-separated, of {HEADS}")
    parser.add_argument("--gates", default=None,
                        help="comma-separated energy gate pass rates (default: cbir's, GATE_TPR_WITH_OTHER)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cbir-source-features.npz")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    ensure_extra_photos(args.extra)
    import training.head
    from cbir.config import DEFAULT_MIN_CONFIDENCE

    gates = [float(g) for g in args.gates.split(",")] if args.gates else [training.head.GATE_TPR_WITH_OTHER]
    path_list, label_list, project_list, md5_list = collect([(args.gallery, False), (args.extra, False),
                                                             (args.other, True)])
    labels, projects, md5s = np.array(label_list), np.array(project_list), np.array(md5_list)
    plain, augmented, imagenet = embed_all(path_list, 2, args.cache)
    classes = sorted(set(label_list) - {"other"})
    result = {"machine": machine(), "threshold": DEFAULT_MIN_CONFIDENCE,
              "shipped": {"head": "embedding+scene", "gate": training.head.GATE_TPR_WITH_OTHER},
              "photos": {c: int((labels == c).sum()) for c in [*classes, "other"]},
              "sources": {c: sorted(set(projects[labels == c])) for c in [*classes, "other"]},
              "duplicates_across_sources": int(sum(len(set(projects[md5s == m])) > 1 for m in set(md5_list))),
              "runs": []}
    print(f"{len(labels)} photos from {len(set(project_list))} sources: {result['photos']}")
    for gate in gates:
        training.head.GATE_TPR_WITH_OTHER = gate
        for head in args.heads.split(","):
            probs = hold_out(head, plain, augmented, imagenet, labels, projects, md5s, classes, args.seed)
            r = {"head": head, "gate": gate, **summarise(probs, labels, projects, classes, DEFAULT_MIN_CONFIDENCE)}
            result["runs"].append(r)
            print_run(r, result, classes)
    emit_json(result, args.json)


def print_run(r: dict, result: dict, classes: list[str]) -> None:
    print(f"\n{r['head']}, gate {r['gate']}: no-category photos moved {r['other_moved']:.3f}")
    print(f"{'category':<12}{'photos':>7}{'sources':>8}{'precision':>10}{'recall':>8}{'recall@P.95':>13}")
    for c in classes:
        m = r["at_threshold"][c]
        print(f"{c:<12}{result['photos'][c]:>7}{len(result['sources'][c]):>8}{m['precision']:>10.3f}"
              f"{m['recall']:>8.3f}{r['recall_at_precision_0.95'][c]:>13.3f}")


if __name__ == "__main__":
    main()
