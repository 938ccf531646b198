"""Progress driven by Keras' fit loop (Keras' own bar would write to stdout, which is for results)."""

from __future__ import annotations

from training.progress import Progress


def fit_progress(bar: Progress):
    """A Keras callback that advances ``bar`` per batch and shows the latest epoch's figures."""
    import keras

    class FitProgress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None) -> None:
            bar.update(1)

        def on_epoch_end(self, epoch, logs=None) -> None:
            logs = logs or {}
            shown = {k: f"{logs[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs}
            bar.set_postfix(epoch=epoch + 1, **shown)

        def on_train_end(self, logs=None) -> None:
            bar.close()

    return FitProgress()
