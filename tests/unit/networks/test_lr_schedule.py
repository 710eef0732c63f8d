"""Learning-rate schedules (deepflash.networks.schedules) and the callback that applies them with the plateau rule
(deepflash.worker.callbacks.ScheduledLearningRate): the `lr` history of a real Keras fit follows each formula."""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from deepflash.networks.schedules import SCHEDULES, LrSchedule, check_schedule

BASE = 0.1
EPOCHS = 6
# Each schedule with its constants, and its formula written out independently of LrSchedule.rate.
CASES = {
    "none": (LrSchedule("none"), lambda e: BASE),
    "time": (LrSchedule("time", decay=0.5), lambda e: BASE / (1 + 0.5 * e)),
    "exponential": (LrSchedule("exponential", decay=0.5), lambda e: BASE * math.exp(-0.5 * e)),
    # epochs counted from 1: the first epoch trains at BASE * k / sqrt(1)
    "inverse_sqrt": (LrSchedule("inverse_sqrt", decay=0.5), lambda e: BASE * 0.5 / math.sqrt(e + 1)),
    "step": (LrSchedule("step", step_epochs=2, step_factor=0.5), lambda e: [0.1, 0.1, 0.05, 0.05, 0.025, 0.025][e]),
    # two warm-up epochs (BASE/2, BASE), then cosine from BASE towards 0.01 over the other four
    "cosine": (LrSchedule("cosine", warmup_epochs=2, min_rate=0.01, epochs=EPOCHS),
               lambda e: [0.05, 0.1][e] if e < 2 else 0.01 + 0.09 * (1 + math.cos(math.pi * (e - 2) / 4)) / 2),
}


def test_cases_cover_every_schedule():
    assert set(CASES) == set(SCHEDULES)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_rate_follows_the_formula(kind):
    schedule, formula = CASES[kind]
    for epoch in range(EPOCHS):
        assert schedule.rate(epoch, BASE) == pytest.approx(formula(epoch), rel=1e-12), (kind, epoch)


def test_cosine_reaches_the_peak_after_warm_up_and_falls_towards_the_minimum():
    schedule = LrSchedule("cosine", warmup_epochs=0, min_rate=0.0, epochs=100)
    rates = [schedule.rate(e, 1.0) for e in range(100)]
    assert rates[0] == 1.0 and rates[50] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(rates)) and 0 < rates[-1] < 0.001


def test_unknown_schedule_and_negative_epoch_are_refused():
    with pytest.raises(ValueError, match=re.escape("`lrSchedule` == 'linear', must be one of: none, time")):
        LrSchedule("linear")
    with pytest.raises(ValueError, match=re.escape("epoch == -1, must be >= 0")):
        LrSchedule("time").rate(-1, 0.1)


@pytest.mark.parametrize("schedule, lr, message", [
    (LrSchedule("inverse_sqrt", decay=0.0), 0.1, "`lrDecay` == 0.0, must be > 0 with lrSchedule='inverse_sqrt'"),
    (LrSchedule("cosine", warmup_epochs=5, epochs=5), 0.1,
     "`lrWarmupEpochs` == 5, must be < epochs (5) with lrSchedule='cosine'"),
    (LrSchedule("cosine", min_rate=0.1), 0.1,
     "`lrMinRate` == 0.1, must be < learningRate (0.1) with lrSchedule='cosine'"),
])
def test_check_schedule_names_the_param(schedule, lr, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_schedule(schedule, lr)


def test_constants_of_other_schedules_are_not_checked():
    check_schedule(LrSchedule("time", decay=0.0, warmup_epochs=50, min_rate=5.0, epochs=3), 0.1)


# --- through Keras ---------------------------------------------------------------------------

def data(rows: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)).reshape(-1, 1)


def compiled(optimizer: str = "sgd", lr: float = BASE):
    import tensorflow as tf

    from deepflash.networks import make_optimizer

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs))
    # the estimator's optimizers (legacy Keras), which hold the rate as a float until the first step
    model.compile(optimizer=make_optimizer(optimizer, lr), loss="mse")
    return model


def fit(model, callback, epochs: int = EPOCHS, initial_epoch: int = 0) -> dict:
    x, y = data()
    return model.fit(x, y, batch_size=50, epochs=epochs, initial_epoch=initial_epoch, callbacks=[callback],
                     verbose=0).history


@pytest.mark.parametrize("kind", SCHEDULES)
def test_keras_history_lr_follows_each_schedule(kind):
    from deepflash.worker.callbacks import ScheduledLearningRate

    schedule, formula = CASES[kind]
    history = fit(compiled(), ScheduledLearningRate(schedule, BASE, monitor="loss"))
    assert len(history["lr"]) == EPOCHS
    assert history["lr"] == pytest.approx([formula(e) for e in range(EPOCHS)], rel=1e-6)  # float32 in Keras


def test_a_plateau_multiplies_the_scheduled_rate():
    from deepflash.worker.callbacks import ScheduledLearningRate

    # At a rate this small the loss moves by far less than min_delta (1e-4): every epoch after the
    # first is a plateau, and with patience 1 each one halves the multiplier for the next epoch.
    base = 1e-9
    schedule = LrSchedule("time", decay=0.5)
    callback = ScheduledLearningRate(schedule, base, monitor="loss", patience=1, factor=0.5)
    history = fit(compiled(lr=base), callback)
    expected = [base / (1 + 0.5 * e) * 0.5 ** max(0, e - 1) for e in range(EPOCHS)]
    assert history["lr"] == pytest.approx(expected, rel=1e-6)
    assert callback.multiplier == 0.5 ** (EPOCHS - 1)


def test_the_optimizer_holds_the_next_epochs_rate_after_an_epoch():
    """What a checkpoint written at the end of an epoch records as the learning rate."""
    from deepflash.worker.callbacks import ScheduledLearningRate, get_learning_rate

    model = compiled()
    fit(model, ScheduledLearningRate(LrSchedule("step", step_epochs=2, step_factor=0.5), BASE), epochs=2)
    assert get_learning_rate(model.optimizer) == pytest.approx(0.05, rel=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_other_optimizers_follow_the_schedule(optimizer):
    from deepflash.worker.callbacks import ScheduledLearningRate

    schedule, formula = CASES["cosine"]
    history = fit(compiled(optimizer), ScheduledLearningRate(schedule, BASE, monitor="loss"))
    assert history["lr"] == pytest.approx([formula(e) for e in range(EPOCHS)], rel=1e-6)


def test_resume_continues_the_schedule_and_the_plateau_multiplier():
    from deepflash.worker.callbacks import ScheduledLearningRate

    base, schedule = 1e-9, LrSchedule("exponential", decay=0.3)

    def callback():
        return ScheduledLearningRate(schedule, base, monitor="loss", patience=1, factor=0.5)

    full = fit(compiled(lr=base), callback())["lr"]

    model = compiled(lr=base)
    first = callback()
    head = fit(model, first, epochs=3)["lr"]
    state = first.get_state()
    assert state["multiplier"] == 0.25 and state["wait"] == 0

    resumed = callback()
    resumed.set_state(state)  # applied when the next fit begins
    tail = fit(model, resumed, initial_epoch=3)["lr"]
    assert head + tail == pytest.approx(full, rel=1e-6)

    # The state is what carries the plateau: without it the rest of the run is twice as fast or more.
    fresh = fit(model, callback(), initial_epoch=3)["lr"]
    assert fresh[0] == pytest.approx(full[3] * 4, rel=1e-6)


def test_state_round_trips_through_json():
    import json

    from deepflash.worker.callbacks import ScheduledLearningRate

    callback = ScheduledLearningRate(LrSchedule("time"), 0.1, patience=2, factor=0.5)
    callback.multiplier, callback.wait, callback.cooldown_counter, callback.best = 0.125, 1, 0, np.float32(0.75)
    state = json.loads(json.dumps(callback.get_state()))
    other = ScheduledLearningRate(LrSchedule("time"), 0.1, patience=2, factor=0.5)
    other._apply_state(state)
    assert (other.multiplier, other.wait, other.cooldown_counter) == (0.125, 1, 0)
    assert other.best == np.float32(0.75) and isinstance(other.best, np.float32)


# --- the plot ---------------------------------------------------------------------------------

def test_learning_curves_get_an_lr_panel_when_the_history_has_lr(tmp_path):
    from deepflash.reporting import plots

    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.7, 0.8],
               "lr": [0.1, 0.05, 0.025]}
    assert plots.curve_panels(history) == ["loss", "accuracy", "lr"]
    assert plots.curve_panels({k: v for k, v in history.items() if k != "lr"}) == ["loss", "accuracy"]
    path = plots.learning_curves(history, str(tmp_path / "curves.png"))
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (800, 500)


# --- checkpoints from before schedules -------------------------------------------------------

def checkpoint(learning_rate: float | None, num_proc: int | None = None, learning_rate_state: dict | None = None,
               legacy_plateau_state: dict | None = None):
    from deepflash.worker.checkpoint import Checkpoint

    return Checkpoint(epoch=2, history={}, fingerprint="fp", run_id="r", weights=[], optimizer=[],
                      learning_rate=learning_rate, learning_rate_state=learning_rate_state, early_stopping_state=None,
                      stopped=False, num_proc=num_proc, cascade_stage=None, legacy_plateau_state=legacy_plateau_state)


def test_an_old_checkpoint_gives_its_multiplier_from_its_rate():
    counters = {"wait": 1, "cooldown_counter": 0, "best": {"value": 0.5, "dtype": "float32"}}
    old = checkpoint(0.0025, num_proc=2, legacy_plateau_state=counters)
    assert old.learning_rate_callback_state(0.01, False, 1) == {**counters, "multiplier": 0.25}
    # the old run scaled α0 by its 2 processes: 0.0025 was 0.125 of 0.02
    assert old.learning_rate_callback_state(0.01, True, 4)["multiplier"] == pytest.approx(0.125)
    assert checkpoint(0.01).learning_rate_callback_state(0.01, False, 1) is None
    new = {"multiplier": 0.5, **counters}
    assert checkpoint(1.0, learning_rate_state=new).learning_rate_callback_state(0.01, False, 1) == new


def test_an_old_checkpoint_file_loads_its_plateau_counters(tmp_path):
    import io
    import json

    from deepflash.io.store import Store
    from deepflash.worker.checkpoint import Checkpoint

    counters = {"wait": 1, "cooldown_counter": 0, "best": {"value": 0.5, "dtype": "float32"}}
    state = {"format": 2, "epoch": 3, "history": {"loss": [1.0, 0.9, 0.8]}, "fingerprint": "fp", "run_id": "r",
             "num_weights": 1, "num_optimizer": 0, "learning_rate": 0.0025, "callbacks": {"reduce_lr": counters}}
    buf = io.BytesIO()
    np.savez(buf, state=np.array(json.dumps(state)), w0=np.ones(3, np.float32))
    store = Store(str(tmp_path))
    path = str(tmp_path / "old.npz")
    store.write_bytes(path, buf.getvalue())
    loaded = Checkpoint.load(store, path, "fp")
    assert (loaded.epoch, loaded.num_proc, loaded.cascade_stage, loaded.stopped) == (3, None, None, False)
    np.testing.assert_array_equal(loaded.weights[0], np.ones(3, np.float32))
    # the run that wrote it had no recorded process count: this run's 2 stand in
    assert loaded.learning_rate_callback_state(0.01, True, 2) == {**counters, "multiplier": pytest.approx(0.125)}


# --- through the estimator -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(spark):
    x, y = data(120, seed=1)
    rows = [(row.tolist(), float(target > 0)) for row, target in zip(x.astype(float), y[:, 0], strict=True)]
    return spark.createDataFrame(rows, ["features", "label"]).cache()


def estimator(tmp_path, **kwargs):
    from deepflash import KerasEstimator

    return KerasEstimator(backend="local", batchSize=32, layers=[{"type": "dense", "units": 4, "activation": "relu"}],
                          validationSplit=0.25, seed=3, storePath=str(tmp_path), **kwargs)


def test_estimator_history_lr_follows_cosine_with_warm_up(tiny, tmp_path):
    model = estimator(tmp_path, epochs=5, learningRate=0.01, lrSchedule="cosine", lrWarmupEpochs=2,
                      lrMinRate=0.001).fit(tiny)
    expected = [0.005, 0.01, 0.01, 0.001 + 0.009 * 0.75, 0.001 + 0.009 * 0.25]
    assert model.getHistory()["lr"] == pytest.approx(expected, rel=1e-6)


def test_estimator_plateau_multiplies_the_step_schedule(tiny, tmp_path):
    # learningRate this small: val_loss cannot improve by min_delta, every epoch after the first is a plateau
    model = estimator(tmp_path, epochs=4, learningRate=1e-7, lrSchedule="step", lrStepEpochs=2, lrStepFactor=0.1,
                      reduceLrPatience=1, reduceLrFactor=0.5).fit(tiny)
    assert model.getHistory()["lr"] == pytest.approx([1e-7, 1e-7, 1e-8 * 0.5, 1e-8 * 0.25], rel=1e-6)
