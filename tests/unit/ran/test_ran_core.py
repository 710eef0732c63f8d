"""Platt's RAN in numpy (deepflash.ran.core), without Spark: growth, accuracy against fixed RBF
networks, the npz round trip, and the estimator's Param checks (which need no SparkSession)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepflash.ran import RAN, RANEstimator, RANSettings, RBFNetwork


def sine(n: int, low: float = 0.0, high: float = 2 * np.pi, seed: int = 1):
    x = np.random.default_rng(seed).uniform(low, high, n)[:, None]
    return x, np.sin(x[:, 0])


def test_units_grow_on_a_new_region_and_stay_flat_on_repeated_inputs():
    x_a, y_a = sine(200, 0.0, np.pi)
    ran = RAN(RANSettings(), input_dim=1).fit(x_a, y_a, epochs=6, seed=0)
    learned = ran.num_units
    assert learned >= 3 and ran.unit_history[-1] == ran.unit_history[-2] == learned

    ran.fit(x_a, y_a, epochs=3, seed=1)          # the same inputs again, in other orders
    assert ran.unit_history[-3:] == [learned] * 3

    x_b = x_a + 3 * np.pi                         # a region no centre is near, with other targets
    ran.fit(x_b, 2.0 + np.sin(x_b[:, 0]), epochs=1, seed=0)
    grown = ran.num_units
    assert grown > learned
    new_centres = ran.network().centres[learned:, 0]
    assert np.all(new_centres >= 3 * np.pi)       # every new unit sits in the new region


def test_a_unit_is_added_only_when_far_and_wrong():
    settings = RANSettings(distance_max=0.5, distance_min=0.5, error_threshold=0.1)
    ran = RAN(settings, input_dim=1)
    ran.learn(np.array([[0.0]]), np.array([0.0]))           # first example: sets the bias, no unit
    assert ran.num_units == 0 and ran.network().bias == 0.0
    ran.learn(np.array([[2.0]]), np.array([0.05]))          # far, but the error is within epsilon
    assert ran.num_units == 0
    ran.learn(np.array([[2.0]]), np.array([1.0]))           # far and wrong: a unit, fitting it exactly
    net = ran.network()
    assert net.num_units == 1 and net.centres[0, 0] == 2.0 and net.widths[0] == pytest.approx(0.87 * 0.5)
    assert net.predict(np.array([[2.0]]))[0] == pytest.approx(1.0)
    ran.learn(np.array([[2.2]]), np.array([-1.0]))          # wrong, but near a centre: an LMS step only
    assert ran.num_units == 1 and ran.network().weights[0] < 1.0
    ran.learn(np.array([[3.0]]), np.array([-1.0]))          # far and wrong: width from the nearest centre
    assert ran.num_units == 2 and ran.network().widths[1] == pytest.approx(0.87 * (3.0 - ran.network().centres[0, 0]))


def test_max_units_caps_growth():
    x, y = sine(300)
    assert RAN(RANSettings(max_units=4), 1).fit(x, y, epochs=3).num_units == 4


def fixed_rbf(x, y, units: int, settings: RANSettings, epochs: int, seed: int, least_squares: bool) -> RBFNetwork:
    """A fixed RBF network: ``units`` centres drawn at random from the inputs, widths by the RAN's
    rule (overlap x distance to the nearest other centre), and the output weights and bias either
    by least squares or by the RAN's own LMS passes (same rate, order and centre updates, no growth)."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), units, replace=False)]
    gaps = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))
    np.fill_diagonal(gaps, np.inf)
    widths = settings.overlap * gaps.min(axis=1)
    if least_squares:
        phi = np.exp(-((x[:, None] - centres[None]) ** 2).sum(-1) / widths ** 2)
        solution = np.linalg.lstsq(np.c_[phi, np.ones(len(x))], y, rcond=None)[0]
        return RBFNetwork(centres, widths, solution[:-1], float(solution[-1]), np.zeros(units, np.int64))
    start = RBFNetwork(centres, widths, np.zeros(units), float(y[0]), np.zeros(units, np.int64))
    return RAN(replace(settings, max_units=units), 1, start).fit(x, y, epochs=epochs, seed=0).network()


def test_ran_beats_fixed_rbf_networks_of_its_size_on_a_sine():
    # y = sin(x), 300 random training points on [0, 2 pi]; MAE on a 500-point grid. The fixed
    # networks get as many units as the RAN grew, the same width rule and, for the LMS one, the
    # same passes in the same orders; five random placements each, and the RAN must beat the
    # best of them by 2x.
    x, y = sine(300)
    grid = np.linspace(0, 2 * np.pi, 500)[:, None]
    settings = RANSettings()
    ran = RAN(settings, 1).fit(x, y, epochs=10, seed=0).network()
    mae = np.abs(ran.predict(grid) - np.sin(grid[:, 0])).mean()
    assert mae < 0.02
    for least_squares in (False, True):
        fixed = [np.abs(fixed_rbf(x, y, ran.num_units, settings, 10, seed, least_squares).predict(grid)
                        - np.sin(grid[:, 0])).mean() for seed in range(5)]
        assert mae < 0.5 * min(fixed), (least_squares, mae, fixed)


def test_network_round_trips_through_npz_and_scores_like_the_definition():
    x, y = sine(100)
    net = RAN(RANSettings(), 1).fit(x, y, epochs=2).network()
    again = RBFNetwork.from_bytes(net.to_bytes())
    probe = np.linspace(-1, 7, 37)[:, None]
    np.testing.assert_array_equal(again.predict(probe), net.predict(probe))
    np.testing.assert_array_equal(again.allocated_at, net.allocated_at)
    direct = net.bias + (np.exp(-((probe[:, None] - net.centres[None]) ** 2).sum(-1) / net.widths ** 2)
                         * net.weights).sum(1)
    np.testing.assert_allclose(net.predict(probe), direct, rtol=1e-10, atol=1e-12)


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="seen no example"):
        RAN(RANSettings(), 1).network()


@pytest.mark.parametrize("param, value, error, match", [
    ("epochs", -1, ValueError, r"`epochs` == -1, must be >= 1"),
    ("epochs", 1.5, TypeError, r"`epochs` == 1.5, must be an integer"),
    ("maxUnits", 0, ValueError, r"`maxUnits` == 0, must be >= 1"),
    ("distanceMax", 0, ValueError, r"`distanceMax` == 0.0, must be > 0"),
    ("distanceDecay", -3.0, ValueError, r"`distanceDecay` == -3.0, must be > 0"),
    ("errorThreshold", -0.1, ValueError, r"`errorThreshold` == -0.1, must be >= 0"),
    ("overlap", "wide", TypeError, r"`overlap` == 'wide', must be a number"),
    ("learningRate", float("nan"), ValueError, r"`learningRate` == nan"),
])
def test_bad_param_values_name_the_param(param, value, error, match):
    with pytest.raises(error, match=match):
        RANEstimator(**{param: value})


def test_distance_min_above_max_is_named():
    with pytest.raises(ValueError, match=r"`distanceMin` == 2.0, must be <= `distanceMax` \(1.0\)"):
        RANEstimator(distanceMin=2.0, distanceMax=1.0).settings()


def test_stage_builds_with_no_arguments_and_setters_return_self():
    est = RANEstimator()
    assert est.setEpochs(3) is est and est.getEpochs() == 3 and est.setMaxUnits(7).getMaxUnits() == 7
    assert est.settings() == replace(RANSettings(), max_units=7)
    copied = est.copy({est.overlap: 0.5})
    assert copied.getOverlap() == 0.5 and est.getOverlap() == 0.87
