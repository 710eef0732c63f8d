"""``trainTimeout``: a fit still training at its deadline stops at the next batch, naming the Param
and the epoch."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from deepflash.worker.callbacks import StopAtDeadline, TrainTimeoutError


class SlowBatches(tf.keras.callbacks.Callback):
    """Each batch takes 50 ms more, so that the deadline falls within a known batch."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        time.sleep(0.05)


def _fit(callbacks, epochs=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(8).repeat()
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model.fit(data, steps_per_epoch=10, epochs=epochs, verbose=0, callbacks=callbacks)


def test_a_fit_past_its_deadline_stops_at_the_next_batch_naming_the_param_and_the_epoch():
    slow = SlowBatches()
    started = time.time()
    # 4 epochs of 10 batches of >= 50 ms: over 2 s of batches; the deadline comes at 1.5 s
    with pytest.raises(TrainTimeoutError, match=r"^training ran past `trainTimeout` == 1\.5 s, in epoch [1-4]; raise "
                                                r"`trainTimeout`"):
        _fit([slow, StopAtDeadline(started + 1.5, 1.5)])
    assert slow.batches < 40, "the fit ran through its deadline"
    assert time.time() - started < 1.5 + 1, "the fit ran on past the batch the deadline fell in"


def test_a_fit_within_its_deadline_runs_through():
    history = _fit([StopAtDeadline(time.time() + 600, 600)], epochs=2)
    assert len(history.history["loss"]) == 2
