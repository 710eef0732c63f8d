"""Search-space checks, translation to hyperopt and grid enumeration (tuning.space, tuning.hyperopt.space)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hyperopt import hp
from hyperopt.pyll import stochastic

from deepflash.tuning.hyperopt.space import grid_points, to_hyperopt
from deepflash.tuning.space import apply_dropout, check_space, to_params

SPACE = {
    "learningRate": {"loguniform": [1e-4, 1e-1]},
    "optimizer": {"choice": ["adam", "sgd", "adamax"]},
    "batchSize": {"choice": [16, 64, 128, 256]},
    "epochs": {"quniform": [5, 50, 5]},
    "dropout": {"uniform": [0, 0.5]},
    "loss": {"choice": ["categorical_crossentropy", "mse", "mae"]},
}


def samples(space, n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [stochastic.sample(to_hyperopt(space), rng=rng) for _ in range(n)]


def test_samples_stay_in_range_and_learning_rate_is_log_scaled():
    draws = samples(SPACE)
    lrs = np.array([d["learningRate"] for d in draws])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # log-uniform: about a third of the draws fall in each decade
    assert 0.2 < np.mean(lrs < 1e-3) < 0.47 and 0.2 < np.mean(lrs > 1e-2) < 0.47
    assert {d["optimizer"] for d in draws} == {"adam", "sgd", "adamax"}
    assert {d["epochs"] % 5 for d in draws} == {0}


def test_to_params_casts_integers_and_applies_dropout():
    params = to_params({"epochs": 15.0, "batchSize": np.int64(64), "dropout": 0.25, "learningRate": 0.01},
                       base_layers=[{"type": "dense", "units": 8, "activation": "relu"}])
    assert params["epochs"] == 15 and isinstance(params["epochs"], int)
    assert params["batchSize"] == 64 and isinstance(params["batchSize"], int)
    assert params["layers"] == [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dropout", "rate": 0.25}]
    assert "dropout" not in params


def test_apply_dropout_overrides_existing_dropout_layers():
    layers = apply_dropout([{"type": "dense", "units": 4}, {"type": "dropout", "rate": 0.4}], 0.1)
    assert layers == [{"type": "dense", "units": 4}, {"type": "dropout", "rate": 0.1}]


def test_architecture_is_conditional_on_depth():
    space = {"layers": {"architecture": {"depth": [1, 4], "units": [16, 32, 64], "activation": ["relu", "tanh"],
                                         "dropout": [0.0, 0.5], "batchnorm": [True, False]}}}
    depths = set()
    for draw in samples(space, n=100):
        layers = to_params(draw, base_layers=None)["layers"]
        dense = [layer for layer in layers if layer["type"] == "dense"]
        depths.add(len(dense))
        assert all(layer["units"] in (16, 32, 64) and layer["activation"] in ("relu", "tanh") for layer in dense)
        assert all(0 <= layer["rate"] <= 0.5 for layer in layers if layer["type"] == "dropout")
    assert depths == {1, 2, 3, 4}


def test_raw_hyperopt_expressions_pass_through():
    space = {"learningRate": hp.loguniform("lr", math.log(1e-3), math.log(1e-2))}
    assert all(1e-3 <= d["learningRate"] <= 1e-2 for d in samples(space, n=20))


@pytest.mark.parametrize("space, match", [
    ({}, "non-empty dict"),
    ({"dropuot": {"uniform": [0, 1]}}, r"'dropuot' is not a searchable KerasEstimator Param; valid names: layers"),
    ({"featuresCol": {"choice": ["a"]}}, "not a searchable"),
    ({"learningRate": {"logunif": [1e-4, 1e-1]}}, "unknown kind 'logunif'"),
    ({"learningRate": {"loguniform": [0, 1e-1]}}, "log scale needs low > 0"),
    ({"learningRate": {"uniform": [1, 0.5]}}, "low must be below high"),
    ({"optimizer": {"choice": []}}, "non-empty list"),
    ({"optimizer": {"architecture": {}}}, "only `layers`"),
    ({"layers": {"architecture": {"depth": [0, 2]}}}, r"depth == \[0, 2\]"),
    ({"lrSchedule": {"choice": ["cosine", "linear"]}},
     r"^`space`\['lrSchedule'\]\.choice\[1\]: `lrSchedule` == 'linear', must be one of: none, time"),
])
def test_bad_spaces_are_rejected_with_the_dimension_named(space, match):
    with pytest.raises(ValueError, match=match):
        check_space(space)


def test_a_search_can_choose_the_schedule_and_its_decay():
    space = {"lrSchedule": {"choice": ["none", "Time", "exponential"]}, "lrDecay": {"loguniform": [0.01, 1.0]},
             "lrStepEpochs": {"quniform": [1, 5, 1]}}
    draws = [to_params(d, base_layers="simple") for d in samples(space, n=60)]
    assert {d["lrSchedule"] for d in draws} == {"none", "time", "exponential"}  # through the Param's converter
    assert all(0.01 <= d["lrDecay"] <= 1.0 for d in draws)
    assert all(isinstance(d["lrStepEpochs"], int) and 1 <= d["lrStepEpochs"] <= 5 for d in draws)
    assert len(grid_points({"lrSchedule": {"choice": ["step", "cosine"]}, "lrDecay": {"choice": [0.1, 0.5]}})) == 4


def test_grid_is_the_cartesian_product_of_choices():
    space = {"optimizer": {"choice": ["adam", "sgd"]}, "batchSize": {"choice": [16, 64, 256]}}
    points = grid_points(space)
    assert len(points) == 6
    expected = {(o, b) for o in ("adam", "sgd") for b in (16, 64, 256)}
    assert {(p["optimizer"], p["batchSize"]) for p in points} == expected


def test_grid_sample_takes_a_reproducible_fraction():
    # the tfruns-style study: 2,916 combinations, 5% sampled -> 146 (the published run evaluated 145)
    space = {"optimizer": {"choice": list(range(4))}, "batchSize": {"choice": list(range(9))},
             "epochs": {"choice": list(range(9))}, "learningRate": {"choice": list(range(9))}}
    full = grid_points(space)
    assert len(full) == 2916
    sampled = grid_points(space, sample=0.05, seed=1)
    assert len(sampled) == 146
    assert len({tuple(sorted(p.items())) for p in sampled}) == 146
    assert sampled == grid_points(space, sample=0.05, seed=1)
    assert sampled != grid_points(space, sample=0.05, seed=2)


def test_grid_rejects_continuous_dimensions():
    with pytest.raises(ValueError, match=r"algo='grid' needs `choice` dimensions only; `space`\['learningRate'\]"):
        grid_points({"learningRate": {"loguniform": [1e-4, 1e-1]}})


# --- image searches: augmentation, initializers, L1/L2 -----------------------------------------

IMAGE_SPACE = {
    "augmentation": {"choice": [[], [{"type": "Shift", "factor": 0.1}],
                                [{"type": "flip"}, {"type": "cutout", "size": 4}]]},
    "kernelInitializer": {"choice": ["he_uniform", "GLOROT_NORMAL"]},
    "l2": {"loguniform": [1e-6, 1e-3]},
    "l1": {"choice": [0.0, 1e-5]},
}


def test_a_search_can_choose_augmentation_initializer_and_regularization():
    base = [{"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "maxpool2d"},
            {"type": "dense", "units": 4, "l2": 0.5}, {"type": "dropout", "rate": 0.2}]
    seen_aug, seen_init = set(), set()
    for draw in samples(IMAGE_SPACE, n=60):
        params = to_params(draw, base_layers=base)
        seen_aug.add(json.dumps(params["augmentation"]))
        seen_init.add(params["kernelInitializer"])
        assert "l1" not in params and "l2" not in params
        conv, pool, dense, drop = params["layers"]
        assert 1e-6 <= conv["l2"] <= 1e-3 and conv["l2"] == dense["l2"]   # the sampled value replaces 0.5
        assert conv["l1"] == dense["l1"] and conv["l1"] in (0.0, 1e-5)
        assert "l2" not in pool and "l2" not in drop
    # values come back through the Params' converters: lower-cased, defaults filled in, plain JSON
    assert seen_aug == {"[]", '[{"type": "shift", "factor": 0.1}]',
                        '[{"type": "flip", "mode": "horizontal"}, {"type": "cutout", "size": 4}]'}
    assert seen_init == {"he_uniform", "glorot_normal"}


def test_regularization_of_a_preset_resolves_it():
    layers = to_params({"l2": 1e-4}, base_layers="fashion_cnn")["layers"]
    assert [layer.get("l2") for layer in layers if layer["type"] in ("conv2d", "dense")] == [1e-4] * 3


@pytest.mark.parametrize("space, match", [
    ({"augmentation": {"choice": [[], [{"type": "blur"}]]}},
     r"`space`\['augmentation'\]\.choice\[1\]: `augmentation\[0\]\.type` == 'blur'"),
    ({"augmentation": {"uniform": [0, 1]}}, r"`augmentation` can only be a choice dimension"),
    ({"kernelInitializer": {"choice": ["ones"]}}, r"choice\[0\]: `kernelInitializer` == 'ones', must be one of"),
    ({"inputShape": {"choice": [[8, 8, 1]]}}, r"'inputShape' is not a searchable"),
])
def test_bad_image_dimensions_are_rejected(space, match):
    with pytest.raises(ValueError, match=match):
        check_space(space)
