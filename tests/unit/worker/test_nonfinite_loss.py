"""A fit whose loss turns NaN or infinite stops at once with an error naming the epoch; it never
ends with NaN weights."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepflash.worker.callbacks import NonFiniteLossError, StopOnNonFiniteLoss


class CountBatches(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _model(learning_rate: float):
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32) * 1e3
    return tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(8).repeat()


def test_a_diverging_loss_stops_the_fit_within_its_first_epoch():
    counted = CountBatches()
    with pytest.raises(NonFiniteLossError, match=r"^the training loss became (nan|inf) at batch \d+ in epoch 1: "
                                                 r"training diverged; lower `learningRate` \(now 1000\)"):
        _model(1e3).fit(_data(), steps_per_epoch=50, epochs=3, verbose=0,
                        callbacks=[StopOnNonFiniteLoss(1e3), counted])
    assert counted.batches < 50, "the fit went on past the first non-finite loss"


def test_nan_weights_at_the_end_of_a_fit_are_refused():
    model = _model(1e-3)
    guard = StopOnNonFiniteLoss(1e-3)
    guard.set_model(model)
    guard.on_epoch_begin(4)
    guard.on_epoch_end(4, {"loss": 0.5, "val_loss": 0.7})  # finite: nothing to say
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    with pytest.raises(NonFiniteLossError, match=r"^the weights became NaN or infinite in epoch 5"):
        guard.on_train_end()


def test_a_non_finite_validation_loss_is_refused():
    guard = StopOnNonFiniteLoss(0.01)
    with pytest.raises(NonFiniteLossError, match=r"^`val_loss` became inf in epoch 3"):
        guard.on_epoch_end(2, {"loss": 0.5, "val_loss": float("inf")})
