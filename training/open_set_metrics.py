"""Open-set figures: how well a model tells its categories from photos of none of them, and what a clean would do.

- AUROC and the false-positive rate at 95% true-positive rate of "is one of the categories" against
  "is other", scored by 1 - p(other) (by the top probability for a closed-set model);
- for each category, the precision and recall of what `cbir clean` would move at a threshold (moved:
  predicted that category with at least that probability), and the share of "other" photos it would move;
- calibration: expected calibration error over 10 equal-width confidence bins, and those bins for a
  reliability diagram.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from indexer.categorizer import OTHER


@dataclass
class OpenSetReport:
    threshold: float
    known: int  # photos of one of the categories
    others: int  # photos of none of them
    auroc: float | None
    fpr_at_95_tpr: float | None
    other_moved: float | None  # share of "other" photos a clean would move
    moved: dict[str, dict[str, float]]  # category -> precision, recall, moved, support
    ece: float
    reliability: list[dict[str, float]]  # per confidence bin: low, high, count, confidence, accuracy

    def as_dict(self) -> dict:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {"threshold": self.threshold, "known_images": self.known, "other_images": self.others,
                "auroc": r(self.auroc), "fpr_at_95_tpr": r(self.fpr_at_95_tpr), "other_moved": r(self.other_moved),
                "moved": {c: {k: r(v) if isinstance(v, float) else v for k, v in m.items()}
                          for c, m in self.moved.items()},
                "ece": r(self.ece), "reliability": self.reliability}

    def table(self) -> str:
        lines = [f"what a clean at confidence {self.threshold:g} would move ({self.known} photos of the categories, "
                 f"{self.others} of none of them)", f"{'category':<14}{'precision':>10}{'recall':>8}{'moved':>7}"
                 f"{'support':>9}"]
        for name, m in self.moved.items():
            lines.append(f"{name:<14}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['moved']:>7d}{m['support']:>9d}")
        if self.other_moved is not None:
            lines.append(f"{'other moved':<14}{self.other_moved:>10.3f}")
        if self.auroc is not None:
            lines.append(f"{'AUROC':<14}{self.auroc:>10.3f}   (categories vs other)")
            lines.append(f"{'FPR@95%TPR':<14}{self.fpr_at_95_tpr:>10.3f}")
        lines.append(f"{'ECE':<14}{self.ece:>10.3f}   (expected calibration error, 10 bins)")
        return "\n".join(lines)


def open_set_report(truth: list[str], probs: np.ndarray, outputs: list[str], threshold: float) -> OpenSetReport:
    """Figures for photos with true labels ``truth`` (a category or "other") and probabilities over ``outputs``."""
    truth_arr = np.asarray(truth)
    probs = np.asarray(probs, np.float64)
    best = probs.argmax(axis=1)
    predicted = np.asarray(outputs)[best]
    confidence = probs.max(axis=1)
    moved = (predicted != OTHER) & (confidence >= threshold)
    is_known = truth_arr != OTHER
    per_category = {}
    for name in (o for o in outputs if o != OTHER):
        mine = moved & (predicted == name)
        hits = int(np.sum(mine & (truth_arr == name)))
        support = int(np.sum(truth_arr == name))
        per_category[name] = {"precision": hits / int(mine.sum()) if mine.any() else 0.0,
                              "recall": hits / support if support else 0.0,
                              "moved": int(mine.sum()), "support": support}
    auroc = fpr = other_moved = None
    if is_known.any() and (~is_known).any():
        score = 1.0 - probs[:, outputs.index(OTHER)] if OTHER in outputs else confidence
        auroc = _auroc(score[is_known], score[~is_known])
        cut = np.quantile(score[is_known], 0.05)
        fpr = float(np.mean(score[~is_known] >= cut))
        other_moved = float(np.mean(moved[~is_known]))
    correct = (predicted == truth_arr).astype(np.float64)
    ece, bins = calibration(confidence, correct)
    return OpenSetReport(threshold, int(is_known.sum()), int((~is_known).sum()), auroc, fpr, other_moved,
                         per_category, ece, bins)


def calibration(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability bins (Guo et al. 2017)."""
    bins = []
    ece = 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high) if low > 0 else (confidence >= low) & (confidence <= high)
        if not inside.any():
            continue
        mean_conf, accuracy = float(confidence[inside].mean()), float(correct[inside].mean())
        ece += inside.mean() * abs(mean_conf - accuracy)
        bins.append({"low": round(float(low), 2), "high": round(float(high), 2), "count": int(inside.sum()),
                     "confidence": round(mean_conf, 4), "accuracy": round(accuracy, 4)})
    return float(ece), bins


def _auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))


CURVE_THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))


def pr_curves(truth: list[str], probs: np.ndarray, outputs: list[str],
              thresholds: tuple[float, ...] = CURVE_THRESHOLDS) -> dict[str, list[dict]]:
    """Per category, the precision and recall of what a clean would move at each threshold (a clean moves a photo
    when the category is its most likely output and at least that likely)."""
    truth_arr = np.asarray(truth)
    probs = np.asarray(probs, np.float64)
    predicted = np.asarray(outputs)[probs.argmax(axis=1)]
    confidence = probs.max(axis=1)
    curves: dict[str, list[dict]] = {}
    for name in (o for o in outputs if o != OTHER):
        support = int(np.sum(truth_arr == name))
        points = []
        for t in thresholds:
            mine = (predicted == name) & (confidence >= t)
            hits = int(np.sum(mine & (truth_arr == name)))
            points.append({"threshold": t, "precision": round(hits / int(mine.sum()), 4) if mine.any() else None,
                           "recall": round(hits / support, 4) if support else None, "moved": int(mine.sum())})
        curves[name] = points
    return curves
