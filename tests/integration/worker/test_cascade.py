"""Cascade (layer-wise) learning end to end on digits: accuracy, stages in the history, frozen and
fine-tuned layers, the plateau rule within each stage, exact resume (local and Horovod) and
errors before any job."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from deepflash import KerasEstimator
from deepflash.worker.loop import CHECKPOINT_FILE, CRASH_ENV
from helpers import accuracy, fails_cleanly

pytestmark = pytest.mark.slow

LAYERS = [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 32, "activation": "relu"},
          {"type": "dense", "units": 32, "activation": "relu"}]
STAGES = [3, 4, 5]


def cascade(store: str, **params) -> KerasEstimator:
    base = dict(layers=LAYERS, trainingMode="cascade", cascadeEpochs=STAGES, epochs=sum(STAGES), optimizer="adam",
                learningRate=3e-3, batchSize=32, reduceLrPatience=2, seed=3, storePath=store, backend="local")
    return KerasEstimator(**{**base, **params})


def expected_stages(epochs: list[int]) -> list[float]:
    return [float(k + 1) for k, n in enumerate(epochs) for _ in range(n)]


def checkpoint_state(path: str) -> dict:
    with open(path, "rb") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as z:
        return json.loads(str(z["state"]))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cascade-store"))


@pytest.mark.both_profiles(reason="stages recompile a Keras 2 or a Keras 3 network")
def test_local_cascade_fit_reaches_090_and_records_its_stages(digits, store):
    train, test = digits
    model = cascade(store).fit(train)
    history = model.getHistory()
    assert history["stage"] == expected_stages(STAGES)
    assert all(len(v) == sum(STAGES) for v in history.values())
    assert accuracy(model.transform(test)) >= 0.9
    net = model.getKerasModel()                  # the full network, every layer trainable, no stage outputs
    assert [layer.name for layer in net.layers if layer.name.startswith("cascade")] == []
    assert all(layer.trainable for layer in net.layers)
    assert len([layer for layer in net.layers if layer.__class__.__name__ == "Dense"]) == 4


class WeightRecorder:
    """Every hidden layer's weights after every epoch, by layer name."""

    def __init__(self):
        import tensorflow as tf

        recorder = self
        self.epochs: list[dict] = []

        class Callback(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                recorder.epochs.append({layer.name: [w.copy() for w in layer.get_weights()]
                                        for layer in self.model.layers if layer.name.startswith("dense")})

        self.callback = Callback()


def layer_path(store, train, rate: float) -> tuple[list[dict], list[str]]:
    """Per epoch, every hidden layer's weights, in a cascade fit with fine-tune ``rate``."""
    from deepflash.worker.loop import train_network

    est = cascade(store, cascadeFineTuneRate=rate)
    plan = est.plan(train)
    recorder = WeightRecorder()
    trained = train_network(est.paramValues(), plan, callbacks=[recorder.callback])
    assert trained.history["stage"] == expected_stages(STAGES)
    names = sorted({name for epoch in recorder.epochs for name in epoch}, key=lambda n: int(n.split("_")[-1])
                   if n[-1].isdigit() else 0)
    return recorder.epochs, names


def change(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(sum(np.abs(x - y).sum() for x, y in zip(a, b, strict=True)))


@pytest.mark.both_profiles(reason="`trainable` and per-layer rates differ between Keras 2 and Keras 3")
def test_frozen_layers_do_not_change_in_later_stages_and_fine_tuned_ones_change_less(digits, store):
    train, _ = digits
    frozen, names = layer_path(store, train, 0.0)
    first, second, third = names[:3]                # the hidden dense layers, in order
    end1, end2 = STAGES[0] - 1, STAGES[0] + STAGES[1] - 1
    assert first in frozen[0] and third not in frozen[0]        # stage 1's network: layer 1 only
    assert change(frozen[end1 + 1][first], frozen[end1][first]) == 0     # frozen from stage 2 on
    assert change(frozen[-1][first], frozen[end1][first]) == 0
    assert change(frozen[end2][second], frozen[end1 + 1][second]) > 0     # layer 2 trains in stage 2
    assert change(frozen[-1][second], frozen[end2][second]) == 0          # and is frozen in stage 3
    assert change(frozen[-1][third], frozen[end2 + 1][third]) > 0

    # Layer names differ between builds: each run's first hidden layer is its own names[0].
    tuned, tuned_names = layer_path(store, train, 0.1)
    full, full_names = layer_path(store, train, 1.0)
    moved_tuned = change(tuned[end2][tuned_names[0]], tuned[end1][tuned_names[0]])
    moved_full = change(full[end2][full_names[0]], full[end1][full_names[0]])
    assert 0 < moved_tuned < 0.5 * moved_full, (moved_tuned, moved_full)


def test_plateau_rule_divides_the_rate_by_10_within_each_stage(digits, store):
    train, _ = digits
    # At this rate val_loss improves by less than the plateau's min_delta: from the second epoch of
    # a stage on, every epoch is a plateau. The time schedule restarts with each stage as well.
    rate = 1e-7
    model = cascade(store, learningRate=rate, reduceLrPatience=1, reduceLrFactor=0.1, lrSchedule="time", lrDecay=1.0,
                    cascadeEpochs=[3, 3], epochs=6, layers=LAYERS[:2]).fit(train)
    history = model.getHistory()
    assert history["stage"] == expected_stages([3, 3])
    per_stage = [rate, rate / 2, rate / 3 * 0.1]
    assert history["lr"] == pytest.approx(per_stage * 2, rel=1e-5)


def test_bad_cascade_params_fail_before_any_job(spark, digits, tmp_path):
    train, _ = digits
    cases = [
        (dict(cascadeEpochs=[3, 4]), r"`cascadeEpochs` == \[3, 4\] has 2 stage"),
        (dict(epochs=11), r"`cascadeEpochs` == \[3, 4, 5\] sums to 12, must sum to `epochs` \(11\)"),
        (dict(earlyStoppingPatience=2), r"`earlyStoppingPatience` == 2, must be 0"),
        (dict(reduceLrPatience=0), r"`reduceLrPatience` == 0, must be >= 1"),
        (dict(cascadeEpochs=[], epochs=2), r"`epochs` == 2, must be >= 3"),
        (dict(validationSplit=0.0), r"`earlyStoppingMonitor` == 'val_loss' needs validation data"),
        (dict(layers=[{"type": "dropout", "rate": 0.5}], cascadeEpochs=[]), r"`layers` has none"),
    ]
    for i, (params, match) in enumerate(cases):
        fails_cleanly(spark, str(tmp_path / f"store{i}"), train, cascade("unused", **params), ValueError, match,
                      no_job=True)


class Interrupt:
    """A Keras callback that raises at the start of a (1-based) epoch, after the checkpoint of the
    epoch before was written."""

    def __new__(cls, epoch: int):
        import tensorflow as tf

        class _Interrupt(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, index, logs=None):
                if index + 1 == epoch:
                    raise RuntimeError(f"interrupted at epoch {epoch}")

        return _Interrupt()


@pytest.mark.parametrize("stop_at,stage", [(4, 1), (3, 0)])   # within stage 2; right after stage 1
def test_local_resume_within_and_between_stages_is_exact(digits, store, stop_at, stage):
    """A run interrupted at the start of epoch ``stop_at`` and resumed from its checkpoint ends
    bitwise as the run that went through."""
    from deepflash.io.keras_files import model_to_bytes
    from deepflash.networks import build_model
    from deepflash.worker import loop as remote

    train, _ = digits
    est = cascade(store, cascadeEpochs=[2, 3], epochs=5, layers=LAYERS[:2], reduceLrPatience=1, learningRate=1e-2)
    plan = est.plan(train)
    values = est.paramValues()
    model_bytes = model_to_bytes(build_model(values["layers"], plan.input_dim, plan.output_kind, plan.num_classes,
                                             seed=values["seed"]))
    path = os.path.join(store, "runs", f"resume-{stop_at}", CHECKPOINT_FILE)

    def settings(checkpoint):
        return remote.make_settings(values, plan, model_bytes, run_fingerprint="fp", run_id=f"resume-{stop_at}",
                                    checkpoint_path=checkpoint)

    through = remote.train(settings(None))
    with pytest.raises(RuntimeError, match="interrupted"):
        remote.train(settings(path), [Interrupt(stop_at)])
    state = checkpoint_state(path)
    assert (state["format"], state["epoch"], state["cascade_stage"]) == (4, stop_at - 1, stage)
    resumed = remote.train(settings(path))
    assert resumed.initial_epoch == stop_at - 1
    assert resumed.history == through.history
    assert resumed.history["stage"] == expected_stages([2, 3])
    for a, b in zip(resumed.weights, through.weights, strict=True):
        np.testing.assert_array_equal(a, b)


# Horovod's Spark thread raises too when the task of a crashed rank is lost: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.horovod
def test_horovod_two_process_cascade_fit_and_crash_resume(digits, store, tmp_path, monkeypatch):
    train, test = digits
    # Fine-tuned earlier layers: the scaled updates run in each rank's train step after Horovod's allreduce.
    params = dict(backend="horovod", numProc=2, cascadeFineTuneRate=0.5)
    reference = cascade(store, runId="hvd-cascade-reference", **params).fit(train)
    history = reference.getHistory()
    assert history["stage"] == expected_stages(STAGES)
    assert accuracy(reference.transform(test)) >= 0.9

    # A Horovod rank is its task's Python worker: its death is a lost task, Spark runs the training
    # stage again (the marker disarms the hook), and the new attempt resumes within stage 2.
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"rank=1,epoch=6,marker={marker}")   # within stage 2 (epochs 4-7)
    resumed = cascade(store, runId="hvd-cascade-crash", **params).fit(train)
    assert marker.exists()
    state = checkpoint_state(os.path.join(store, "runs", "hvd-cascade-crash", CHECKPOINT_FILE))
    assert (state["epoch"], state["cascade_stage"]) == (12, 2)
    assert resumed.fitInfo["initial_epoch"] == 5
    assert resumed.getHistory() == history
    for a, b in zip(resumed.getKerasModel().get_weights(), reference.getKerasModel().get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
