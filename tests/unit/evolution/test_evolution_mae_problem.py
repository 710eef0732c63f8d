"""The MAE-random-sampling problem: its fitness, its activations, and the genetic algorithm on it."""
from __future__ import annotations

import numpy as np
import pytest

from deepflash.evolution import Architecture, ArchitectureSpace, GeneticAlgorithm, MAERandomSamplingProblem
from deepflash.evolution.sampling import mae_random_sampling
from deepflash.ml.timeseries import window_arrays

SERIES = np.sin(2 * np.pi * np.arange(400) / 25)
SPACE = ArchitectureSpace(look_back=(1, 6), hidden_layers=(1, 2), units=(1, 8), layer_types=("lstm", "dense"))


def test_fitness_is_the_sampling_log_p():
    problem = MAERandomSamplingProblem(SERIES, SPACE, samples=30, seed=4, init="glorot_uniform")
    arch = Architecture(2, (1, 2, 2, 1))
    x, y = window_arrays(SERIES, 2)
    expected = mae_random_sampling(x, y, [2, 2], samples=30, seed=4, init="glorot_uniform").log_p
    assert problem.evaluate(arch) == (pytest.approx(expected),)
    assert problem.maximize == (True,)


@pytest.mark.slow
def test_ga_improves_log_p_over_generations():
    problem = MAERandomSamplingProblem(SERIES, SPACE, samples=30)
    result = GeneticAlgorithm(population_size=6, generations=5, seed=1).run(problem)
    history = result.history
    assert history[-1].best_so_far > history[0].best
    assert result.best.fitness[0] == pytest.approx(problem.evaluate(result.decoded)[0])
    assert result.evaluations == sum(g.evaluated for g in history) < 6 * 6


def test_activations_the_sampling_cannot_draw_are_refused():
    space = ArchitectureSpace(activations=("tanh", "elu"))
    with pytest.raises(ValueError, match=r"`activations` == \['tanh', 'elu'\]: MAE random sampling draws"):
        MAERandomSamplingProblem(SERIES, space)
