"""PNG figures: training curves and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(phases: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, phases one after another."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        offset = 0
        for i, phase in enumerate(phases):
            history = phase["history"]
            epochs = range(offset + 1, offset + len(history.get(metric, [])) + 1)
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                if history.get(key):
                    label = f"{'validation' if key.startswith('val_') else 'train'} ({phase['name']})"
                    ax.plot(list(epochs), history[key], style, color=f"C{2 * i + key.startswith('val_')}",
                            label=label)
            offset += len(history.get(metric, []))
            if i < len(phases) - 1:
                ax.axvline(offset + 0.5, color="grey", linewidth=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("cbir training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(classes: list[str], matrix: list[list[int]], path: Path, title: str) -> Path:
    plt = _pyplot()
    size = 2.5 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > peak / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(bins: list[dict], ece: float, path: Path, title: str) -> Path:
    """A reliability diagram: accuracy against confidence per bin, with the diagonal a calibrated model follows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for b in bins:
        ax.bar((b["low"] + b["high"]) / 2, b["accuracy"], width=b["high"] - b["low"], edgecolor="black",
               color="tab:blue", alpha=0.7)
        ax.text((b["low"] + b["high"]) / 2, b["accuracy"] + 0.01, str(b["count"]), ha="center", fontsize=7)
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="tab:red",
            label="accuracy at mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (top probability)", ylabel="accuracy",
           title=f"{title}\nECE {ece:.3f} (bar labels: photos per bin)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pr_curves(curves: dict[str, list[dict]], path: Path, title: str, threshold: float) -> Path:
    """Each category's precision against recall over the clean threshold, ``threshold`` marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, points in curves.items():
        kept = [p for p in points if p["precision"] is not None and p["recall"] is not None]
        if not kept:
            continue
        line = ax.plot([p["recall"] for p in kept], [p["precision"] for p in kept], marker=".", label=name)[0]
        at_default = [p for p in kept if abs(p["threshold"] - threshold) < 1e-9]
        if at_default:
            ax.scatter([at_default[0]["recall"]], [at_default[0]["precision"]], s=60, color=line.get_color(),
                       edgecolor="black", zorder=3)
    ax.set_xlabel("recall (share of the category's photos a clean moves)")
    ax.set_ylabel("precision (share of the moved photos that belong)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\n(circled: threshold {threshold:g})", fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
