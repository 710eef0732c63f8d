"""Architecture search without and with training.

Modules:
    architecture    network architectures as integer genes (``ArchitectureSpace``, ``Architecture``)
    problem         the seam between an optimizer and what it optimizes (``Problem``, ``Solution``)
    problems        architecture problems on a time series: MAE random sampling (no training) or a
                    short training run
    genetic         ``GeneticAlgorithm`` on DEAP's operators
    evaluators      a batch of encodings scored in this process or one Spark task each
    sampling        MAE random sampling, a training-free score of an architecture
    random_weights  networks with drawn weights, many draws evaluated at once
    search          ``EvolutionarySearch``, the genetic algorithm as a Spark ML Estimator

Example:
    >>> import numpy as np
    >>> from deepflash.evolution import mae_random_sampling
    >>> from deepflash.ml.timeseries import window_arrays
    >>> x, y = window_arrays(np.sin(2 * np.pi * np.arange(1000) / 100), look_back=2)
    >>> mae_random_sampling(x, y, [2, 2]).to_dict()["architecture"]
    [1, 2, 2, 1]
    >>> from deepflash.evolution import ArchitectureSpace, GeneticAlgorithm, TrainedErrorProblem
    >>> problem = TrainedErrorProblem(np.sin(np.arange(600) / 8), ArchitectureSpace(look_back=(1, 6)))
    >>> result = GeneticAlgorithm(population_size=6, generations=3).run(problem)
    >>> result.decoded.layers, result.best.fitness
"""
from __future__ import annotations

from deepflash.evolution.architecture import Architecture, ArchitectureSpace
from deepflash.evolution.evaluators import Evaluation, Evaluator, LocalEvaluator, SparkEvaluator
from deepflash.evolution.genetic import EvolutionResult, GenerationStats, GeneticAlgorithm
from deepflash.evolution.problem import Problem, Solution
from deepflash.evolution.problems import (
    ArchitectureProblem,
    MAERandomSamplingProblem,
    TrainedErrorProblem,
    TrainingSettings,
)
from deepflash.evolution.sampling import (
    DEFAULT_THRESHOLD_FRACTION,
    SamplingResult,
    mae_random_sampling,
    mean_predictor_mae,
    sample_architectures,
)
from deepflash.evolution.search import EvolutionarySearch, EvolutionarySearchModel

__all__ = ["Architecture", "ArchitectureProblem", "ArchitectureSpace", "DEFAULT_THRESHOLD_FRACTION", "Evaluation",
           "Evaluator", "EvolutionResult", "EvolutionarySearch", "EvolutionarySearchModel", "GenerationStats",
           "GeneticAlgorithm", "LocalEvaluator", "MAERandomSamplingProblem", "Problem", "SamplingResult", "Solution",
           "SparkEvaluator", "TrainedErrorProblem", "TrainingSettings", "mae_random_sampling", "mean_predictor_mae",
           "sample_architectures"]
