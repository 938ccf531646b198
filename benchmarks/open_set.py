"""Open-set categories: how each method tells the five categories from photos of none of them.

    python -m benchmarks.open_set [--gallery DIR] [--extra DIR] [--other DIR] [--folds 5] [--json OUT]

Every photo is embedded once with cbir's engine (ImageNet trunk), plus two
augmented copies for use when it is a training photo, as `cbir train` does.
Then each method is trained and measured on the same folds, with cbir's own
code for the shipped one (training.head.fit_categorizer, indexer.categorizer,
training.open_set_metrics), on frozen features:

- closed: the categories only, no "other" (what cbir shipped before);
- msp, energy, knn, mahalanobis: the categories only, plus a rejection score
  (top probability, energy over the logits, cosine distance to the nearest
  training photo, class-conditional Gaussian distance) with its threshold set
  so 95% of the validation photos of the categories pass: no negatives needed;
- other: an explicit "other" class learned from the negatives;
- other+energy@R: that, plus an energy gate passing the share R of the
  validation photos of the categories, for kinds of photos no negative showed
  (0.97 is what cbir shipped before);
- scene+other+energy@R: what cbir ships: that, the head also reading
  ImageNet's class scores (indexer.categorizer.head_features), R =
  training.head.GATE_TPR_WITH_OTHER.

Two protocols: 5-fold cross-validation over all photos (stratified by class
and, for "other", by subject), so every photo is predicted by a model that
never saw it; and leave-one-subject-out for "other" (animals, vehicles, ...
each held out in turn, with a fifth of the categories' photos), which
measures photos of kinds no negative in training showed. Each fold holds out
a fifth of its training photos for validation (temperature and gates).
Figures at the default clean threshold: per category the precision and
recall of what `cbir clean` would move, the share of "other" photos it would
move, AUROC and FPR at 95% TPR (categories against other), expected
calibration error, and the macro-F1 of the categories' own photos. Finally,
the shipped default model on its own held-out test split, the mixture the
targets are stated for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import add_extra_option, emit_json, ensure_extra_photos, imagenet_classifier

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
METHODS = ["closed", "msp", "energy", "knn", "mahalanobis", "other", "other+energy@0.99", "other+energy@0.97",
           "scene+other+energy@0.93"]
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def collect(gallery: Path, extra: Path, other: Path) -> tuple[list[str], list[str], list[str]]:
    """(paths, labels, subjects): the categories' photos, then the negatives labelled "other"."""
    paths, labels, subjects = [], [], []
    for root, is_other in ((gallery, False), (extra, False), (other, True)):
        for path in sorted(root.glob("*/*")):
            if path.suffix.lower() in EXTENSIONS:
                paths.append(str(path))
                labels.append("other" if is_other else path.parent.name)
                subjects.append(path.parent.name)
    return paths, labels, subjects


def embed_all(paths: list[str], copies: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unit features of every photo (n, 2048) and of ``copies`` augmented versions (n, copies, 2048)."""
    if cache.is_file():
        data = np.load(cache)
        if list(data["paths"]) == paths:
            return data["plain"], data["augmented"]
    from indexer.engines.load import load_embedder
    from indexer.loader import load_image
    from training.augment import augment, build_augmenter

    embedder = load_embedder(None, "imagenet")
    augmenter = build_augmenter(0)
    plain, augmented = [], []
    for start in range(0, len(paths), 16):
        pixels = np.stack([load_image(p)[0] for p in paths[start : start + 16]])
        plain.append(embedder.embed(pixels).vectors)
        augmented.append(np.stack([embedder.embed(augment(augmenter, pixels)).vectors for _ in range(copies)], 1))
        print(f"embedded {min(start + 16, len(paths))}/{len(paths)}", file=sys.stderr, flush=True)
    result = np.concatenate(plain), np.concatenate(augmented)
    np.savez(cache, paths=np.array(paths), plain=result[0], augmented=result[1])
    return result


def folds(labels: np.ndarray, subjects: np.ndarray, protocol: str, k: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    known = labels != "other"
    if protocol == "cv":
        strata = np.where(known, labels, "other:" + subjects)
        yield from StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, strata)
        return
    known_idx = np.where(known)[0]
    known_folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(known_idx, labels[known]))
    for i, subject in enumerate(sorted(set(subjects[~known]))):
        test = np.concatenate([known_idx[known_folds[i % k][1]], np.where(~known & (subjects == subject))[0]])
        yield np.setdiff1d(np.arange(len(labels)), test), test


def predict(method: str, classes: list[str], train: tuple, val: tuple,
            test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over classes + "other" for the test photos, and each method's own score of
    "is one of the categories" (higher: more so), which AUROC and FPR at 95% TPR are computed from."""
    import training.head as head

    (tx, ty), (vx, vy) = train, val
    use_other = "other" in method
    keep_t = np.ones(len(ty), bool) if use_other else ty != "other"
    keep_v = np.ones(len(vy), bool) if use_other else vy != "other"
    if "@" in method:
        head.GATE_TPR_WITH_OTHER = float(method.split("@")[1])
    scene = imagenet_classifier() if method.startswith("scene") else None
    categorizer = head.fit_categorizer(tx[keep_t], list(ty[keep_t]), vx[keep_v], list(vy[keep_v]), classes,
                                       scene=scene)
    if "energy" not in method:
        categorizer.min_energy = None  # the energy gate off; other rejections below
    probs = categorizer.probabilities(test_x)
    if not categorizer.open_set:
        probs = np.concatenate([probs, np.zeros((len(probs), 1))], axis=1)
    known_train = tx[ty != "other"]
    scores = {
        "closed": lambda x: categorizer.probabilities(x).max(axis=1),
        "msp": lambda x: categorizer.probabilities(x)[:, : len(classes)].max(axis=1),
        "energy": lambda x: categorizer.energy(categorizer.logits(x)),
        "knn": lambda x: (x @ known_train.T).max(axis=1),
        "mahalanobis": _mahalanobis(known_train, ty[ty != "other"], classes),
    }
    score = scores.get(method, lambda x: 1.0 - categorizer.probabilities(x)[:, -1])
    if method in ("msp", "knn", "mahalanobis"):
        cut = np.quantile(score(vx[vy != "other"]), 1 - head.GATE_TPR_WITHOUT_OTHER)
        rejected = score(test_x) < cut
        probs[rejected, : len(classes)] = 0.0
        probs[rejected, -1] = 1.0
    return probs, score(test_x)


def _mahalanobis(x: np.ndarray, y: np.ndarray, classes: list[str]):
    from sklearn.covariance import LedoitWolf

    means = {c: x[y == c].mean(axis=0) for c in classes}
    precision = LedoitWolf().fit(np.concatenate([x[y == c] - means[c] for c in classes])).precision_

    def score(q: np.ndarray) -> np.ndarray:
        d = [np.einsum("ij,jk,ik->i", q - means[c], precision, q - means[c]) for c in classes]
        return -np.min(np.stack(d, axis=1), axis=1)

    return score


def run_protocol(protocol: str, plain, augmented, labels, subjects, classes, k: int, seed: int,
                 methods: list[str]) -> dict:
    from cbir.config import DEFAULT_MIN_CONFIDENCE
    from training.classification_metrics import classification_report
    from training.open_set_metrics import _auroc, open_set_report

    outputs = [*classes, "other"]
    results = {}
    for method in methods:
        probs = np.zeros((len(labels), len(outputs)))
        in_score = np.zeros(len(labels))
        seen = np.zeros(len(labels), bool)
        for train_idx, test_idx in folds(labels, subjects, protocol, k, seed):
            rng = np.random.default_rng(seed)
            shuffled = rng.permutation(train_idx)
            val_idx, fit_idx = shuffled[: len(shuffled) // 5], shuffled[len(shuffled) // 5 :]
            copies = augmented.shape[1]
            tx = np.concatenate([plain[fit_idx], *(augmented[fit_idx, c] for c in range(copies))])
            ty = np.tile(labels[fit_idx], 1 + copies)
            fold_probs, fold_score = predict(method, classes, (tx, ty), (plain[val_idx], labels[val_idx]),
                                             plain[test_idx])
            fresh = ~seen[test_idx]  # leave-one-subject-out repeats the categories' folds: first answer counts
            probs[test_idx[fresh]] = fold_probs[fresh]
            in_score[test_idx[fresh]] = fold_score[fresh]
            seen[test_idx] = True
        report = open_set_report(list(labels[seen]), probs[seen], outputs, DEFAULT_MIN_CONFIDENCE)
        positive, negative = in_score[seen & (labels != "other")], in_score[seen & (labels == "other")]
        report.auroc = _auroc(positive, negative)  # from the method's own continuous score
        report.fpr_at_95_tpr = float(np.mean(negative >= np.quantile(positive, 0.05)))
        known = seen & (labels != "other")
        predicted = [outputs[i] for i in probs[known].argmax(axis=1)]
        in_dist = classification_report(list(labels[known]), predicted, outputs)
        results[method] = {**report.as_dict(), "categories_macro_f1": round(
            float(np.mean([in_dist.per_class[c]["f1"] for c in classes])), 4)}
    return results


def print_table(title: str, results: dict, classes: list[str]) -> None:
    print(f"\n{title}")
    head = f"{'method':<14}{'other moved':>12}{'AUROC':>7}{'FPR95':>7}{'ECE':>7}{'F1 cat.':>8}  " + "  ".join(
        f"{c[:10]:>10}" for c in classes) + "   (precision/recall of what clean moves)"
    print(head)
    for method, r in results.items():
        cells = "  ".join(f"{r['moved'][c]['precision']:.2f}/{r['moved'][c]['recall']:.2f}".rjust(10) for c in classes)
        print(f"{method:<14}{r['other_moved']:>12.3f}{r['auroc']:>7.3f}{r['fpr_at_95_tpr']:>7.3f}{r['ece']:>7.3f}"
              f"{r['categories_macro_f1']:>8.3f}  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "data"
    parser.add_argument("--gallery", type=Path, default=shared / "gallery")
    parser.add_argument("--other", type=Path, default=shared / "other")
    add_extra_option(parser)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {METHODS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cbir-open-set-features.npz")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    ensure_extra_photos(args.extra)
    paths, label_list, subject_list = collect(args.gallery, args.extra, args.other)
    labels, subjects = np.array(label_list), np.array(subject_list)
    plain, augmented = embed_all(paths, 2, args.cache)
    classes = sorted(set(label_list) - {"other"})
    counts = {c: int((labels == c).sum()) for c in [*classes, "other"]}
    print(f"{len(paths)} photos: {counts}")
    result = {"photos": counts, "threshold": None, "protocols": {}}
    for protocol, title in (("cv", f"{args.folds}-fold cross-validation (every photo predicted once, unseen)"),
                            ("loso", "leave one 'other' subject out (kinds of photos no negative showed)")):
        result["protocols"][protocol] = run_protocol(protocol, plain, augmented, labels, subjects, classes,
                                                     args.folds, args.seed, args.methods.split(","))
        print_table(title, result["protocols"][protocol], classes)

    from cbir.config import DEFAULT_MIN_CONFIDENCE
    from indexer.model import default_model_dir

    result["threshold"] = DEFAULT_MIN_CONFIDENCE
    card = json.loads((default_model_dir() / "model_card.json").read_text())
    shipped = card["metrics"]["test"]
    result["default_model_test_split"] = {k: shipped.get(k) for k in ("samples", "accuracy", "categories_only",
                                                                      "open_set")}
    print(f"\nthe shipped default model on its held-out test split ({shipped.get('samples')} photos: "
          f"{card['split']['counts']['test']} held out of {card['split']['counts']})")
    if "open_set" in shipped:
        from training.open_set_metrics import OpenSetReport

        o = shipped["open_set"]
        print(OpenSetReport(o["threshold"], o["known_images"], o["other_images"], o["auroc"], o["fpr_at_95_tpr"],
                            o["other_moved"], o["moved"], o["ece"], o["reliability"]).table())
        print(f"categories only: {shipped.get('categories_only')}")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
