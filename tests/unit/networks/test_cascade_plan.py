"""Cascade learning without Spark: the plan (blocks, epochs per stage, checks), the stage networks
(shared layers, frozen or fine-tuned at exactly lr x factor), checkpoint formats and the plot's marks."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from deepflash import KerasEstimator
from deepflash.networks import build_model, validate_layers
from deepflash.networks.cascade_plan import CascadePlan, cascade_blocks, resolve_cascade, stage_epochs
from deepflash.networks.keras_compat import optimizer_module, output_shape

MLP = [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dropout", "rate": 0.1},
       {"type": "dense", "units": 6, "activation": "relu"}, {"type": "batchnorm"},
       {"type": "dense", "units": 5, "activation": "tanh"}]


def values(**params) -> dict:
    base = dict(layers=MLP, trainingMode="cascade", epochs=9, reduceLrPatience=1)
    return KerasEstimator(**{**base, **params}).paramValues()


# --- the plan -----------------------------------------------------------------------------------

@pytest.mark.parametrize("total,stages,growth", [(10, 4, 2.0), (10, 4, 1.5), (7, 3, 1.0), (4, 4, 3.0), (50, 5, 1.2),
                                                 (13, 2, 1.0)])
def test_stage_epochs_add_up_and_grow(total, stages, growth):
    epochs = stage_epochs(total, stages, growth)
    assert sum(epochs) == total and len(epochs) == stages and min(epochs) >= 1
    assert list(epochs) == sorted(epochs)           # a deeper stage never gets fewer epochs
    if growth == 1.0:
        assert max(epochs) - min(epochs) <= 1       # no growth: an even split
    if growth >= 2 and total >= 2 * stages:
        assert epochs[-1] > epochs[0]


def test_stage_epochs_need_one_epoch_per_stage():
    with pytest.raises(ValueError, match=r"`epochs` == 3, must be >= 4"):
        stage_epochs(3, 4, 1.5)


def test_blocks_take_the_weightless_layers_after_each_weighted_one():
    assert cascade_blocks(validate_layers(MLP)) == (2, 4, 5)
    assert cascade_blocks(validate_layers([{"type": "dropout", "rate": 0.2}] + MLP[:1])) == (2,)
    from deepflash.networks import resolve_layers

    assert cascade_blocks(validate_layers(resolve_layers("deep"))) == (1, 2, 3, 4)
    assert cascade_blocks(validate_layers(resolve_layers("tuned_mlp"))) == (3, 6, 9)
    with pytest.raises(ValueError, match=r"`layers` has none"):
        cascade_blocks(validate_layers([{"type": "dropout", "rate": 0.2}]))


def test_plan_from_params():
    plan = resolve_cascade(values(cascadeEpochs=[2, 3, 4]))
    assert plan == CascadePlan(blocks=(2, 4, 5), epochs=(2, 3, 4), fine_tune_rate=0.0)
    assert [(s.start, s.end, s.layers) for s in plan.stages] == [(0, 2, 2), (2, 5, 4), (5, 9, 5)]
    assert plan.stage_of(4).index == 1
    assert resolve_cascade(values(cascadeGrowth=2.0)).epochs == stage_epochs(9, 3, 2.0)
    assert resolve_cascade(values(cascadeFineTuneRate=0.1)).fine_tune_rate == 0.1
    assert resolve_cascade(values(trainingMode="standard")) is None


@pytest.mark.parametrize("params,match", [
    (dict(cascadeEpochs=[2, 3]), r"`cascadeEpochs` == \[2, 3\] has 2 stage\(s\), but `layers` has 3"),
    (dict(cascadeEpochs=[2, 3, 5]), r"`cascadeEpochs` == \[2, 3, 5\] sums to 10, must sum to `epochs` \(9\)"),
    (dict(epochs=2), r"`epochs` == 2, must be >= 3"),
    (dict(earlyStoppingPatience=2), r"`earlyStoppingPatience` == 2, must be 0 with trainingMode='cascade'"),
    (dict(reduceLrPatience=0), r"`reduceLrPatience` == 0, must be >= 1 with trainingMode='cascade'"),
    (dict(lrSchedule="cosine", lrWarmupEpochs=3, cascadeEpochs=[2, 3, 4]),
     r"`lrWarmupEpochs` == 3, must be < epochs \(2\).*stage 1 has 2 epoch"),
])
def test_plan_errors_name_the_params(params, match):
    with pytest.raises(ValueError, match=match):
        resolve_cascade(values(**params))
    with pytest.raises(ValueError, match=match):   # the estimator's own check, before any job
        KerasEstimator(**{**dict(layers=MLP, trainingMode="cascade", epochs=9, reduceLrPatience=1),
                          **params}).validateParams()


@pytest.mark.parametrize("name,value,match", [
    ("trainingMode", "cascades", r"`trainingMode` == 'cascades', must be one of: standard, cascade"),
    ("cascadeEpochs", [2, 0], r"`cascadeEpochs` == \[2, 0\], must be a list of integers >= 1"),
    ("cascadeGrowth", 0.5, r"`cascadeGrowth` == 0.5, must be >= 1"),
    ("cascadeFineTuneRate", 1.5, r"`cascadeFineTuneRate` == 1.5, must be <= 1"),
])
def test_param_converters_name_the_param(name, value, match):
    with pytest.raises((TypeError, ValueError), match=match):
        KerasEstimator(**{name: value})


def test_params_default_copy_and_setters():
    est = KerasEstimator()
    assert (est.getTrainingMode(), est.getCascadeEpochs(), est.getCascadeGrowth(),
            est.getCascadeFineTuneRate()) == ("standard", [], 1.5, 0.0)
    same = est.setTrainingMode("CASCADE").setCascadeEpochs([1.0, 2]).setCascadeFineTuneRate(0.5)
    assert same is est and est.getCascadeEpochs() == [1, 2] and est.getTrainingMode() == "cascade"
    assert est.copy().getCascadeEpochs() == [1, 2]


def test_set_model_is_refused_in_cascade_mode():
    model = build_model(MLP, 4, "multiclass", 3)
    est = KerasEstimator(trainingMode="cascade", epochs=9, reduceLrPatience=1).setModel(model)
    with pytest.raises(ValueError, match=r"`trainingMode` == 'cascade' .* setModel"):
        est.validateParams()


def test_search_space_can_choose_cascade():
    from deepflash.tuning.space import check_space

    check_space({"trainingMode": {"choice": ["standard", "cascade"]}, "cascadeGrowth": {"uniform": [1.0, 2.0]},
                 "cascadeFineTuneRate": {"choice": [0.0, 0.1]}})
    with pytest.raises(ValueError, match=r"`trainingMode` == 'cascades'"):
        check_space({"trainingMode": {"choice": ["standard", "cascades"]}})


# --- stage networks -----------------------------------------------------------------------------

def test_stage_networks_share_layers_and_freeze_the_earlier_ones():
    from deepflash.networks.cascade import hidden_layers, reset_trainable, stage_model

    model = build_model(MLP, 4, "multiclass", 3, seed=1)
    plan = CascadePlan(blocks=(2, 4, 5), epochs=(1, 1, 1))
    hidden = hidden_layers(model)
    assert [layer.__class__.__name__ for layer in hidden] == ["Dense", "Dropout", "Dense", "BatchNormalization",
                                                               "Dense"]
    first = stage_model(model, plan, plan.stages[0], seed=5)
    assert first.layers[-1].name == "cascade_output_1" and output_shape(first) == (None, 3)
    assert first.layers[1] is hidden[0]                       # the same layer, so the same variables
    second = stage_model(model, plan, plan.stages[1], seed=5)
    assert not hidden[0].trainable and hidden[2].trainable     # block 1 frozen in stage 2
    assert {id(v) for v in second.trainable_variables} == \
        {id(v) for v in hidden[2].trainable_variables + hidden[3].trainable_variables
         + second.get_layer("cascade_output_2").trainable_variables}
    again = stage_model(model, plan, plan.stages[1], seed=5)    # a resumed run rebuilds the same fresh output
    np.testing.assert_array_equal(again.get_layer("cascade_output_2").get_weights()[0],
                                  second.get_layer("cascade_output_2").get_weights()[0])
    last = stage_model(model, plan, plan.stages[2], seed=5)
    assert last.layers[-1] is model.get_layer("output")        # the network's own output layer
    assert [layer.trainable for layer in hidden] == [False, False, False, False, True]
    reset_trainable(model)
    assert all(layer.trainable for layer in model.layers)


def _two_optimizer_reference(model, earlier, x, y, lr, rate, steps):
    """What an optimizer at lr for the new layers and one at lr*rate for the earlier ones do."""
    import tensorflow as tf

    legacy = optimizer_module()
    old_vars = [v for layer in earlier for v in layer.trainable_variables]
    new_vars = [v for v in model.trainable_variables if all(v is not o for o in old_vars)]
    fast, slow = legacy.Adam(lr), legacy.Adam(lr * rate)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, new_vars + old_vars)
        fast.apply_gradients(zip(grads[:len(new_vars)], new_vars, strict=True))
        slow.apply_gradients(zip(grads[len(new_vars):], old_vars, strict=True))


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_earlier_layers_train_at_exactly_lr_times_the_rate(rate):
    """Three Adam steps of the last stage against two optimizers, one at lr*rate for block 1."""
    from deepflash.networks.cascade import hidden_layers, stage_model

    layers = [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 6, "activation": "tanh"}]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    plan = CascadePlan(blocks=(1, 2), epochs=(1, 1), fine_tune_rate=rate)
    model = build_model(layers, 4, "multiclass", 3, seed=1)
    before = [w.copy() for w in hidden_layers(model)[0].get_weights()]
    net = stage_model(model, plan, plan.stages[1], seed=5)
    net.compile(optimizer=optimizer_module().Adam(0.01), loss="sparse_categorical_crossentropy")
    for _ in range(3):
        net.train_on_batch(x, y)
    after = hidden_layers(model)[0].get_weights()
    if rate == 0:
        for a, b in zip(after, before, strict=True):
            np.testing.assert_array_equal(a, b)
        return
    assert not np.allclose(after[0], before[0])
    reference = build_model(layers, 4, "multiclass", 3, seed=1)
    _two_optimizer_reference(reference, hidden_layers(reference)[:1], x, y, 0.01, rate, 3)
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- checkpoints ----------------------------------------------------------------------------------

def _write_state(tmp_path, **state) -> tuple:
    from deepflash.io.store import Store

    store = Store(str(tmp_path))
    buf = io.BytesIO()
    base = {"format": 3, "epoch": 2, "history": {}, "fingerprint": "fp", "run_id": "r", "num_weights": 0,
            "num_optimizer": 0, "callbacks": {}}
    np.savez(buf, state=np.array(json.dumps({**base, **state})))
    path = Store.join_path(store.run_dir("r"), "checkpoint.npz")
    store.write_bytes(path, buf.getvalue())
    return store, path


def test_older_checkpoints_load_and_newer_ones_fail_clearly(tmp_path):
    from deepflash.worker.checkpoint import FORMAT, Checkpoint

    assert FORMAT == 4
    store, path = _write_state(tmp_path)
    ckpt = Checkpoint.load(store, path, "fp")
    assert ckpt.epoch == 2 and ckpt.cascade_stage is None
    store, path = _write_state(tmp_path, format=99)
    with pytest.raises(ValueError, match=r"has format 99, newer than this deepflash reads \(4\)"):
        Checkpoint.load(store, path, "fp")


# --- the plot -------------------------------------------------------------------------------------

def test_learning_curves_mark_where_each_stage_starts(tmp_path, monkeypatch):
    from deepflash.reporting import plots

    history = {"loss": [1.0, 0.8, 0.9, 0.6, 0.5, 0.7], "val_loss": [1.1, 0.9, 1.0, 0.7, 0.6, 0.8],
               "accuracy": [0.5, 0.6, 0.55, 0.7, 0.8, 0.75], "lr": [1e-3, 1e-3, 1e-3, 1e-4, 1e-3, 1e-3],
               "stage": [1.0, 1.0, 2.0, 2.0, 2.0, 3.0]}
    assert plots.stage_starts(history) == [(3, 2), (6, 3)]
    assert plots.curve_panels(history) == ["loss", "accuracy", "lr"]     # the stage is no panel of its own
    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figures.append(fig), save(fig, path))[1])
    path = plots.learning_curves(history, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0 and path.endswith("curves.png")
    for ax in figures[0].axes:
        marks = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert marks == [2.5, 5.5]
        assert [t.get_text() for t in ax.texts] == ["stage 2", "stage 3"]


def test_config_checks_cascade_keys_with_their_path():
    from deepflash.jobs.config import ConfigError, validate

    ok = validate({"model": {"trainingMode": "cascade", "layers": "deep", "epochs": 8, "reduceLrPatience": 1,
                             "cascadeGrowth": 2}})
    assert ok["model"]["trainingMode"] == "cascade"
    with pytest.raises(ConfigError, match=r"model: `reduceLrPatience` == 0, must be >= 1"):
        validate({"model": {"trainingMode": "cascade", "layers": "deep", "epochs": 8}})
    with pytest.raises(ConfigError, match=r"model.cascadeEpochs: `cascadeEpochs` == \[1, 2\] has 2 stage"):
        validate({"model": {"trainingMode": "cascade", "layers": "deep", "epochs": 3, "reduceLrPatience": 1,
                            "cascadeEpochs": [1, 2]}})
