"""The MAE-random-sampling problem under the genetic algorithm (needs deepflash.evolution.sampling)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("deepflash.evolution.sampling")

from deepflash.evolution import (Architecture, ArchitectureSpace, GeneticAlgorithm,  # noqa: E402
                                 MAERandomSamplingProblem)
from deepflash.evolution.sampling import mae_random_sampling  # noqa: E402
from deepflash.timeseries import window_arrays  # noqa: E402

SERIES = np.sin(2 * np.pi * np.arange(400) / 25)
SPACE = ArchitectureSpace(look_back=(1, 6), hidden_layers=(1, 2), units=(1, 8), layer_types=("lstm", "dense"))


def test_fitness_is_the_sampling_log_p():
    problem = MAERandomSamplingProblem(SERIES, SPACE, samples=30, seed=4)
    arch = Architecture(2, (1, 2, 2, 1))
    x, y = window_arrays(SERIES, 2)
    expected = mae_random_sampling(x, y, [2, 2], samples=30, seed=4).log_p
    assert problem.evaluate(arch) == (pytest.approx(expected),)
    assert problem.maximize == (True,)


@pytest.mark.slow
def test_ga_improves_log_p_over_generations():
    problem = MAERandomSamplingProblem(SERIES, SPACE, samples=30)
    result = GeneticAlgorithm(population_size=6, generations=4, seed=3).run(problem)
    history = result.history
    assert history[-1].best_so_far > history[0].best
    assert result.best.fitness[0] == pytest.approx(problem.evaluate(result.decoded)[0])
    assert result.evaluations == sum(g.evaluated for g in history) < 6 * 5
