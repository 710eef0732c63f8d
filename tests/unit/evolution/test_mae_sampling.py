"""MAE random sampling (deepflash.evolution.sampling) on sine windows; no Spark."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from deepflash.evolution import SamplingResult, mae_random_sampling, mean_predictor_mae, sample_architectures
from deepflash.evolution.random_weights import draw_weights, forward, weight_shapes
from deepflash.ml.timeseries import window_arrays

SINE = np.sin(2 * np.pi * np.arange(1000) / 100)


@pytest.fixture(scope="module")
def windows():
    return window_arrays(SINE, look_back=2)


def test_statistics_are_those_of_its_own_draws(windows):
    x, y = windows
    result = mae_random_sampling(x, y, [2, 2], samples=40, seed=3)
    maes = np.asarray(result.maes)
    assert isinstance(result, SamplingResult)
    assert result.samples == len(maes) == 40
    assert result.look_back == 2 and result.architecture == (1, 2, 2, 1) and result.init == "normal"
    assert result.mean == pytest.approx(maes.mean(), rel=1e-12)
    assert result.std == pytest.approx(maes.std(), rel=1e-12)
    assert maes.min() >= 0 and len(set(maes.tolist())) == 40
    # Default threshold: half the MAE of always predicting the mean of y.
    assert result.threshold == pytest.approx(0.5 * np.mean(np.abs(y - y.mean())))
    # p is the normal fit truncated to [0, inf), written out with the plain normal CDF.
    z_threshold = (result.threshold - result.mean) / result.std
    z_zero = -result.mean / result.std
    expected = (norm.cdf(z_threshold) - norm.cdf(z_zero)) / norm.sf(z_zero)
    assert result.p == pytest.approx(expected, rel=1e-9)
    assert result.log_p == pytest.approx(math.log(expected), rel=1e-9)


def test_to_dict_has_the_listing_fields(windows):
    x, y = windows
    out = mae_random_sampling(x, y, [2, 2], samples=10).to_dict()
    assert out["look_back"] == 2 and out["architecture"] == [1, 2, 2, 1]
    assert set(out["metrics"]) == {"log_p", "p", "mean", "samples", "std"}
    assert out["metrics"]["samples"] == 10


def test_seeded_and_batch_independent(windows):
    x, y = windows
    first = mae_random_sampling(x, y, [3, 2], samples=25, seed=5)
    assert mae_random_sampling(x, y, [3, 2], samples=25, seed=5, batch=7).maes == pytest.approx(first.maes, rel=1e-5)
    assert mae_random_sampling(x, y, [3, 2], samples=25, seed=6).maes != first.maes


def test_tiny_p_stays_finite(windows):
    x, y = windows
    # Input-blind draws: every MAE sits near mean(|y|), far above the threshold.
    result = mae_random_sampling(x, y, [2], init_scale=1e-3, samples=30)
    assert result.p == 0.0 and math.isfinite(result.log_p) and result.log_p < -1000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_network_outscores_a_degenerate_one(windows, seed):
    """Wide: two LSTM layers of 8 units, N(0, 1) weights (DLOPT's init), whose draws follow the
    input in many different ways. Degenerate: one unit whose weights are drawn 100 times smaller,
    so that every draw outputs about 0 whatever the window: each MAE sits at mean(|y|), an
    input-blind error that no draw can bring below the threshold."""
    x, y = windows
    wide = mae_random_sampling(x, y, [8, 8], seed=seed)
    degenerate = mae_random_sampling(x, y, [1], init_scale=0.01, seed=seed)
    assert np.allclose(degenerate.maes, np.mean(np.abs(y)), atol=0.02)
    assert min(wide.maes) < min(degenerate.maes) - 0.1
    assert wide.log_p > degenerate.log_p + 10


@pytest.mark.parametrize("hidden", [[3], [3, 2]])
def test_vectorised_lstm_equals_keras(hidden):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    series = np.stack([SINE[:60], np.cos(SINE[:60])], axis=1)
    x, _ = window_arrays(series, look_back=4)
    weights = draw_weights(weight_shapes(4, 2, hidden), 3, "glorot_uniform", rng)
    weights[2] = rng.standard_normal(weights[2].shape).astype(np.float32)  # non-zero biases too
    predictions = forward(x, weights, hidden).numpy()
    layers = [tf.keras.layers.LSTM(units, return_sequences=i + 1 < len(hidden)) for i, units in enumerate(hidden)]
    model = tf.keras.Sequential([tf.keras.Input((4, 2)), *layers, tf.keras.layers.Dense(1)])
    for draw in range(3):
        model.set_weights([w[draw] for w in weights])
        expected = model(x.astype(np.float32)).numpy()[:, 0]
        np.testing.assert_allclose(predictions[draw], expected, rtol=1e-4, atol=1e-5)


def test_vectorised_dense_equals_keras():
    import tensorflow as tf

    x, _ = window_arrays(SINE[:50], look_back=3)
    weights = draw_weights(weight_shapes(3, 1, [4, 2], "dense"), 2, "normal", np.random.default_rng(1))
    predictions = forward(x, weights, [4, 2], "dense", "relu", "tanh").numpy()
    model = tf.keras.Sequential([tf.keras.Input((3, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(4, "relu"), tf.keras.layers.Dense(2, "relu"),
                                 tf.keras.layers.Dense(1, "tanh")])
    for draw in range(2):
        model.set_weights([w[draw] for w in weights])
        np.testing.assert_allclose(predictions[draw], model(x.astype(np.float32)).numpy()[:, 0], rtol=1e-4, atol=1e-5)


def test_dense_hidden_layers_read_the_flattened_window(windows):
    x, y = windows
    result = mae_random_sampling(x, y, [4], layer_type="dense", init="glorot_uniform", samples=20)
    assert result.architecture == (1, 4, 1) and result.layer_type == "dense" and result.init == "glorot_uniform"


def test_explicit_threshold(windows):
    x, y = windows
    loose = mae_random_sampling(x, y, [2], threshold=10.0, samples=20)
    strict = mae_random_sampling(x, y, [2], threshold=0.01, samples=20)
    assert loose.threshold == 10.0 and loose.p > 0.99 and strict.log_p < loose.log_p
    assert mean_predictor_mae(y) == pytest.approx(np.mean(np.abs(y - y.mean())))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"samples": 0}, ValueError, r"`samples` == 0, must be >= 1"),
    ({"samples": 2.5}, TypeError, r"`samples` == 2.5, must be an integer"),
    ({"hidden": []}, ValueError, r"`hidden` == \[\], must list"),
    ({"hidden": [2, 0]}, ValueError, r"`hidden\[1\]` == 0, must be >= 1"),
    ({"hidden": "2"}, TypeError, r"`hidden` == '2'"),
    ({"init": "xavier"}, ValueError, r"`init` == 'xavier', must be one of: glorot_uniform, normal"),
    ({"init_scale": 0}, ValueError, r"`init_scale` == 0"),
    ({"layer_type": "gru"}, ValueError, r"`layer_type` == 'gru'"),
    ({"activation": "swish"}, ValueError, r"`activation` == 'swish'"),
    ({"threshold": -1.0}, ValueError, r"`threshold` == -1.0, must be a finite number > 0"),
    ({"batch": 0}, ValueError, r"`batch` == 0, must be >= 1"),
    ({"look_back": 3}, ValueError, r"`look_back` == 3, but `x` holds windows of 2 steps"),
])
def test_bad_arguments_are_named(windows, kwargs, error, match):
    x, y = windows
    args = {"hidden": [2], **kwargs}
    with pytest.raises(error, match=match):
        mae_random_sampling(x, y, **args)


def test_bad_data_is_named(windows):
    x, y = windows
    with pytest.raises(ValueError, match=r"`x` has shape \(998, 2\), must be \(rows, look_back, k\)"):
        mae_random_sampling(x[:, :, 0], y, [2])
    with pytest.raises(ValueError, match=r"`y` has shape \(10,\), must be \(998,\)"):
        mae_random_sampling(x, y[:10], [2])
    with pytest.raises(ValueError, match=r"`x` has 0 rows"):
        mae_random_sampling(*window_arrays(SINE[:2], 2), [2])
    with pytest.raises(ValueError, match=r"`y` is constant"):
        mae_random_sampling(x, np.ones_like(y), [2])


@pytest.mark.parametrize("candidates, match", [
    ([], r"`candidates` == \[\], must be a non-empty list"),
    ([(2, [2]), (0, [2])], r"`candidates\[1\] look_back` == 0, must be >= 1"),
    ([(2, [])], r"`candidates\[0\]`: `hidden` == \[\]"),
    ([(1000, [2])], r"`candidates\[0\]` look_back == 1000, but the series has only 1000 steps"),
    ([(2,)], r"`candidates\[0\]` == \(2,\), must be a pair"),
])
def test_bad_candidates_fail_before_spark(candidates, match):
    # spark=None: the checks must all run before Spark is touched.
    with pytest.raises(ValueError, match=match):
        sample_architectures(None, SINE, candidates)
