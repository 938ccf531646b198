"""`cbir train` and `cbir evaluate` (parse and print; the work is in training/)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cbir.cli.common import (
    echo_err,
    json_option,
    model_option,
    progress_bar,
    quiet_option,
    runtime_option,
    setup_logging,
    weights_option,
)
from cbir.config import DEFAULT_MIN_CONFIDENCE
from cbir.text import quote_path
from indexer.engines.load import load_embedder
from indexer.pipeline import estimate_work
from training.evaluate import evaluate
from training.plots import plot_confusion, plot_pr_curves, plot_reliability
from training.trainer import TrainOptions, train


@click.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="New folder for the model, model card, split, history and plots.")
@click.option("--fine-tune", type=click.Choice(["head", "top", "all"]), default="head", show_default=True,
              help="head: train the category head on frozen features (seconds to minutes on a CPU); "
                   "top: then also fine-tune the last ResNet stage (minutes on a CPU); "
                   "all: then fine-tune the whole network (best with a large data set and a GPU).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Most end-to-end epochs for top/all (early stopping usually ends sooner).")
@click.option("--head-epochs", type=click.IntRange(1, 10000), default=200, show_default=True,
              help="Most epochs for the head on cached features.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="Share of each class held out for validation (early stopping).")
@click.option("--test-fraction", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="Share of each class held out for the test figures in the model card.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split, augmentation and init.")
@click.option("--min-per-class", type=click.IntRange(2, None), default=5, show_default=True,
              help="Classes with fewer readable images are reported and left out.")
@click.option("--augment-copies", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Augmented variants of each training image for head training on cached features.")
@click.option("--learning-rate", type=click.FloatRange(0, None, min_open=True), default=None,
              help="Learning rate of the last phase (default: 1e-3 head, 1e-4 top, 3e-5 all).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Images per training step when fine-tuning the network.")
@click.option("--other", "other_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of photos of none of the classes (repeatable, any depth), so the model learns "
                   "'other'; a class folder named 'other' in DATA_DIR counts the same. Without any, photos "
                   "unlike the classes are still recognised from the classes' own photos, less reliably.")
@click.option("--scene/--no-scene", default=True, show_default=True,
              help="With --fine-tune head, let the head read ImageNet's 1000 class scores (seashore, valley, "
                   "plate...) beside the embedding: on sources held out of training it sorted more and moved "
                   "fewer photos of none of the categories. The model folder grows by 4 MB.")
@click.option("--name", default=None, help="Model name for the model card (default: the --out folder's name).")
@click.option("--note", "notes", multiple=True, help="A line for the model card's notes (repeatable).")
@weights_option
@quiet_option("No progress bars.")
@json_option
def train_cmd(data_dir: str, out_dir: str, fine_tune: str, epochs: int, head_epochs: int, val_fraction: float,
              test_fraction: float, seed: int, min_per_class: int, augment_copies: int,
              learning_rate: float | None, batch_size: int, other_dirs: tuple[str, ...], scene: bool,
              name: str | None, notes: tuple[str, ...], weights: str | None, quiet: bool, as_json: bool) -> None:
    """Fine-tune ResNet-50 on DATA_DIR (one subfolder per class) and write a model to --out.

    Use the result with `cbir index --model OUT`, and measure it with `cbir evaluate DATA_DIR --model OUT`.
    """
    setup_logging(quiet)
    result = train(TrainOptions(
        Path(data_dir), Path(out_dir), fine_tune=fine_tune, epochs=epochs, head_epochs=head_epochs,
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, min_per_class=min_per_class,
        augment_copies=augment_copies, learning_rate=learning_rate, fine_tune_batch_size=batch_size,
        name=name, notes=list(notes), weights=weights, other=[Path(d) for d in other_dirs], scene=scene,
        progress=lambda desc, total, unit: progress_bar(total, disable=quiet, unit=unit, desc=desc),
    ))
    test = result.card["metrics"].get("test", {})
    click.echo(f"cbir: model written to {result.out_dir} in {result.seconds:.0f}s", err=True)
    if as_json:
        click.echo(json.dumps(result.card, indent=2))
    elif "accuracy" in test:
        click.echo(f"model\t{result.out_dir}")
        click.echo(f"test_images\t{test['samples']}")
        click.echo(f"test_accuracy\t{test['accuracy']:.4f}")
        click.echo(f"test_macro_f1\t{test['macro_avg']['f1']:.4f}")
    else:
        click.echo(f"model\t{result.out_dir}")


@click.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@model_option
@weights_option
@runtime_option
@click.option("--other", "other_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of photos of none of the categories (repeatable): adds the open-set figures "
                   "(AUROC, FPR at 95% TPR, what a clean would move, calibration). A class folder named "
                   "'other' in DATA_DIR counts the same.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=DEFAULT_MIN_CONFIDENCE, show_default=True,
              help="The clean threshold the open-set figures are computed at.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the confusion matrix as a PNG to this file, and beside it the precision-recall "
                   "curve of each category (NAME-precision-recall.png) and, when there are open-set figures, the "
                   "reliability diagram (NAME-reliability.png).")
@click.option("--group-by", "group_by", type=click.Choice(["source"]), default=None,
              help="Also measure with every source held out in turn (a 'source' column in each folder's "
                   "manifest.csv): a head is fitted without the source's photos and predicts them.")
@click.option("--no-retrieval", is_flag=True,
              help="Skip leave-one-out retrieval (then only the test split of training data is embedded).")
@quiet_option("No progress bar.")
@json_option
def evaluate_cmd(data_dir: str, model: str | None, weights: str | None, runtime: str | None,
                 other_dirs: tuple[str, ...], min_confidence: float, plot_path: str | None, group_by: str | None,
                 no_retrieval: bool, quiet: bool, as_json: bool) -> None:
    """Measure a model on DATA_DIR (one subfolder per class): classification and retrieval quality.

    On the model's own training data only its recorded test split is classified.
    """
    setup_logging(quiet)
    embedder = load_embedder(weights, model, runtime, work=estimate_work([data_dir, *other_dirs]))
    with progress_bar(disable=quiet) as bar:
        bar.set_description("embedding")

        def on_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        report = evaluate(data_dir, embedder, other=list(other_dirs), threshold=min_confidence,
                          retrieval=not no_retrieval, on_progress=bar.update, on_total=on_total,
                          group_by=group_by)
    for path, reason in report.skipped:
        echo_err(f"cbir: skipped {quote_path(path)}: {reason}")
    if plot_path and report.classification is not None:
        plot_confusion(report.classification.classes, report.classification.confusion, Path(plot_path),
                       f"{report.model}: {report.classification_scope}")
        echo_err(f"cbir: confusion matrix written to {quote_path(plot_path)}")
        if report.open_set is not None:
            reliability = Path(plot_path).with_name(Path(plot_path).stem + "-reliability.png")
            plot_reliability(report.open_set.reliability, report.open_set.ece, reliability, report.model)
            echo_err(f"cbir: reliability diagram written to {quote_path(reliability)}")
        curves = (report.held_out or {}).get("precision_recall") or report.pr_curves
        if curves:
            pr_path = Path(plot_path).with_name(Path(plot_path).stem + "-precision-recall.png")
            scope = "every source held out in turn" if report.held_out else report.classification_scope
            plot_pr_curves(curves, pr_path, f"{report.model}: {scope}", min_confidence)
            echo_err(f"cbir: precision-recall curves written to {quote_path(pr_path)}")
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text(), nl=as_json)
