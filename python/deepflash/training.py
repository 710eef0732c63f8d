"""Keras callbacks used by the training processes: checkpoints, progress, early stopping."""
from __future__ import annotations

import io
import json
import logging
import time

import numpy as np
import tensorflow as tf

from deepflash.store import Store

log = logging.getLogger("deepflash")


class RestoreBestEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """Early stopping that always ends on the best weights, also when training runs to the last epoch.

    Keras restores the best weights only when it stops early; a user asking for early stopping
    expects the model of the best epoch either way.
    """

    def __init__(self, monitor: str, patience: int):
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=True, verbose=0)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.stopped_epoch == 0 and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class CheckpointCallback(tf.keras.callbacks.Callback):
    """After every epoch writes weights, optimizer state and history to one file, atomically."""

    def __init__(self, store: Store, path: str, fingerprint: str, history_before: dict, run_id: str):
        super().__init__()
        self.store, self.path, self.fingerprint, self.run_id = store, path, fingerprint, run_id
        self.history = {k: list(v) for k, v in history_before.items()}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        weights = self.model.get_weights()
        opt_weights = self.model.optimizer.get_weights()
        state = {"epoch": epoch + 1, "history": self.history, "fingerprint": self.fingerprint,
                 "run_id": self.run_id, "num_weights": len(weights),
                 "num_optimizer": len(opt_weights)}
        arrays = {f"w{i}": w for i, w in enumerate(weights)}
        arrays.update({f"o{i}": np.asarray(w) for i, w in enumerate(opt_weights)})
        buf = io.BytesIO()
        np.savez(buf, state=np.array(json.dumps(state)), **arrays)
        self.store.write_bytes(self.path, buf.getvalue())


class EpochLogger(tf.keras.callbacks.Callback):
    """One log line per epoch: its number, every metric and its seconds."""

    def __init__(self, epochs: int, prefix: str = ""):
        super().__init__()
        self.epochs, self.prefix = epochs, prefix
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()) if k != "lr")
        log.info("%sepoch %d/%d %s (%.1fs)", self.prefix, epoch + 1, self.epochs, metrics,
                 time.time() - self._started)
