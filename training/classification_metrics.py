"""Per-class precision, recall, F1 and support, averages, accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ClassificationReport:
    classes: list[str]
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    macro: dict[str, float]
    weighted: dict[str, float]
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class, in ``classes`` order
    samples: int
    absent: list[str] = field(default_factory=list)  # classes with no photo in the data: not in the macro average

    def as_dict(self) -> dict:
        return {
            "samples": self.samples,
            "accuracy": round(self.accuracy, 4),
            "per_class": {c: _rounded(v) for c, v in self.per_class.items()},
            "macro_avg": _rounded(self.macro),
            "macro_avg_over": [c for c in self.classes if c not in self.absent],
            "absent_classes": self.absent,
            "weighted_avg": _rounded(self.weighted),
            "confusion_matrix": {"labels": self.classes, "rows_true_columns_predicted": self.confusion},
        }

    def table(self) -> str:
        width = max(12, *(len(c) for c in self.classes)) + 2
        lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        rows = [*self.per_class.items(), ("macro avg", self.macro), ("weighted avg", self.weighted)]
        for name, m in rows:
            if name == "macro avg":
                lines.append("")
            lines.append(f"{name:<{width}}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}"
                         f"{int(m['support']):>10d}")
        lines.append(f"{'accuracy':<{width}}{'':>20}{self.accuracy:>10.3f}{self.samples:>10d}")
        if self.absent:
            lines.append(f"(no photo of {', '.join(self.absent)} in the data: left out of the macro average)")
        return "\n".join(lines)

    def confusion_table(self) -> str:
        width = max(8, *(len(c) for c in self.classes)) + 2
        lines = ["true \\ predicted".ljust(width) + "".join(f"{c[:width - 2]:>{width}}" for c in self.classes)]
        for name, row in zip(self.classes, self.confusion, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{n:>{width}d}" for n in row))
        return "\n".join(lines)


def classification_report(y_true: list[str], y_pred: list[str], classes: list[str]) -> ClassificationReport:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    per_class = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(classes)}
    # A class the data holds no photo of has no recall to average: the macro average is over the others.
    present = [c for i, c in enumerate(classes) if s[i] > 0]
    averages = {}
    for average, labels in (("macro", present), ("weighted", list(classes))):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels or list(classes),
                                                        average=average, zero_division=0)
        averages[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af),
                             "support": int(np.sum(s))}
    matrix = confusion_matrix(y_true, y_pred, labels=classes) if y_true else np.zeros((len(classes),) * 2, int)
    accuracy = float(np.mean([t == q for t, q in zip(y_true, y_pred, strict=True)])) if y_true else 0.0
    return ClassificationReport(list(classes), per_class, averages["macro"], averages["weighted"], accuracy,
                                matrix.astype(int).tolist(), len(y_true), [c for c in classes if c not in present])


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()}
