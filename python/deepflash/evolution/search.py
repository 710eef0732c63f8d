"""EvolutionarySearch: the genetic algorithm as a Spark ML Estimator over an ordered series.

``fit(df)`` orders the series by ``orderBy``, collects its ``valueCols`` to the driver (a series
the search scores is small: every evaluation task receives it), evolves architectures with one
Spark task per new individual, then trains the best one on all the windows with the given
KerasEstimator and returns an :class:`EvolutionarySearchModel`, as HyperoptSearch does.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import HasSeed
from pyspark.sql import DataFrame

from deepflash.backends.executor_env import check_executors
from deepflash.evolution.architecture import LAYER_KINDS, Architecture, ArchitectureSpace
from deepflash.evolution.evaluators import SparkEvaluator
from deepflash.evolution.genetic import GenerationStats, GeneticAlgorithm
from deepflash.evolution.problems import (
    ArchitectureProblem,
    MAERandomSamplingProblem,
    TrainedErrorProblem,
    TrainingSettings,
)
from deepflash.evolution.sampling import INITS as SAMPLING_INITS
from deepflash.ml.converters import add_accessors, to_choice, to_number, to_str, to_str_list
from deepflash.ml.param_table import ParamSpec, declare_params, keyword_params, names, set_defaults
from deepflash.networks.layers import ACTIVATIONS
from deepflash.reporting.tracking import SearchTracker
from deepflash.tuning.base import BaseSearch, BaseSearchModel
from deepflash.tuning.trial import TrialResult, TrialStatus

log = logging.getLogger("deepflash")
PROBLEMS = ("trained", "mae_sampling")


def _int(name: str, low: int):
    return to_number(name, integer=True, low=low)


def _rate(name: str):
    return to_number(name, low=0, high=1)


def _optional_threshold(value):
    return None if value is None else to_number("threshold", low=0, low_open=True)(value)


def _optional_epochs(value):
    return None if value is None else _int("searchEpochs", 1)(value)


EVOLUTION_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("problem", "trained (validation MAE after a short training) or mae_sampling (log_p, no training)",
              to_choice("problem", PROBLEMS), "trained"),
    ParamSpec("valueCols", "the series' value columns; the first is the target", to_str_list("valueCols"),
              ["value"], annotation="list[str]"),
    ParamSpec("orderBy", "the column that orders the series (required)", to_str("orderBy"), annotation="str"),
    ParamSpec("populationSize", "individuals per generation, >= 2", _int("populationSize", 1), 8),
    ParamSpec("generations", "generations after the initial population, >= 0", _int("generations", 0), 4),
    ParamSpec("crossoverRate", "probability that a pair of offspring is crossed, in [0, 1]", _rate("crossoverRate"),
              0.7),
    ParamSpec("mutationRate", "probability that an offspring is mutated, in [0, 1]", _rate("mutationRate"), 0.5),
    ParamSpec("elitism", "best individuals kept unchanged, < populationSize", _int("elitism", 0), 1),
    ParamSpec("tournamentSize", "individuals per selection tournament, >= 1", _int("tournamentSize", 1), 2),
    ParamSpec("parallelism", "evaluations run at once, one Spark task each, >= 1", _int("parallelism", 1), 1),
    ParamSpec("minLookBack", "smallest look-back, >= 1", _int("minLookBack", 1), 1),
    ParamSpec("maxLookBack", "largest look-back, >= minLookBack", _int("maxLookBack", 1), 8),
    ParamSpec("minLayers", "fewest hidden layers, >= 1", _int("minLayers", 1), 1),
    ParamSpec("maxLayers", "most hidden layers, >= minLayers", _int("maxLayers", 1), 2),
    ParamSpec("minUnits", "fewest units per hidden layer, >= 1", _int("minUnits", 1), 1),
    ParamSpec("maxUnits", "most units per hidden layer, >= minUnits", _int("maxUnits", 1), 16),
    ParamSpec("layerTypes", f"hidden layer kinds to search among: {', '.join(LAYER_KINDS)}",
              to_str_list("layerTypes"), ["lstm"], annotation="list[str]"),
    ParamSpec("activations", f"hidden activations to search among: {', '.join(ACTIVATIONS)}",
              to_str_list("activations"), ["tanh"], annotation="list[str]"),
    ParamSpec("searchEpochs", "problem=trained: epochs of each evaluation's training; None = the estimator's epochs",
              _optional_epochs, None, annotation="int"),
    ParamSpec("samples", "problem=mae_sampling: weight draws per architecture, >= 1", _int("samples", 1), 100),
    ParamSpec("samplingInit", f"problem=mae_sampling: {' or '.join(SAMPLING_INITS)}",
              to_choice("samplingInit", SAMPLING_INITS), "normal"),
    ParamSpec("threshold", "problem=mae_sampling: the MAE a draw should reach; None = the sampling's default",
              _optional_threshold, None, annotation="float"),
    ParamSpec("refit", "train the best architecture on all the windows", TypeConverters.toBoolean, True),
    ParamSpec("track", "log the search and its generations to MLflow (when installed)", TypeConverters.toBoolean,
              True),
    ParamSpec("seed", "random seed of the genetic algorithm", TypeConverters.toInt, 0),
    # What a fitted EvolutionarySearchModel found: set by fit, getters only.
    ParamSpec("bestLookBack", "the best architecture's look-back", TypeConverters.toInt, fitted=True),
    ParamSpec("bestLayers", "units per layer, input to output, e.g. [1, 2, 2, 1]", TypeConverters.toListInt,
              fitted=True),
    ParamSpec("bestLayerType", "lstm or dense", TypeConverters.toString, fitted=True),
    ParamSpec("bestActivation", "hidden activation", TypeConverters.toString, fitted=True),
    ParamSpec("bestFitness", "the best architecture's fitness", TypeConverters.toFloat, fitted=True),
    ParamSpec("fitnessName", "what the fitness measures: val_mae or log_p", TypeConverters.toString, fitted=True),
)
_SEARCH_PARAMS = tuple(spec for spec in EVOLUTION_PARAMS if not spec.fitted)
SEARCH_PARAM_NAMES = names(_SEARCH_PARAMS)


class _EvolutionParams(HasSeed):
    """The Params of EvolutionarySearch (and its model), with their defaults."""

    def __init__(self) -> None:
        super().__init__()
        set_defaults(self, _SEARCH_PARAMS)


declare_params(_EvolutionParams, _SEARCH_PARAMS)


class EvolutionarySearch(BaseSearch, _EvolutionParams):
    """Evolves network architectures (look-back, layers, units, layer type, activation) for a time
    series, then trains the best one with ``estimator``.

    Args:
        estimator: a KerasEstimator; its training Params (optimizer, learning rate, batch size,
            loss, seed, validationSplit) also drive ``problem="trained"``'s evaluations; ``layers``,
            ``inputShape`` and ``task`` are set from the best architecture.
        problem: ``trained`` or ``mae_sampling``.
        valueCols, orderBy: the series: its value columns in ``orderBy`` order.
        populationSize, generations, crossoverRate, mutationRate, elitism, tournamentSize, seed:
            the genetic algorithm (:class:`~deepflash.evolution.genetic.GeneticAlgorithm`).
        parallelism: evaluations at once, each one Spark task; CPU threads are split between them.
        minLookBack ... maxUnits, layerTypes, activations: the architecture space.

    Example:
        >>> search = EvolutionarySearch(estimator=KerasEstimator(epochs=20, learningRate=0.01),
        ...                             problem="trained", orderBy="t", valueCols=["value"],
        ...                             populationSize=6, generations=3, parallelism=2)
        >>> found = search.fit(series_df)
        >>> found.getBestLayers(), found.getBestLookBack(), found.modelJson()
    """

    _engine = "evolution"

    @keyword_params(_SEARCH_PARAMS, others={"estimator": None})
    def __init__(self, **params) -> None:
        super().__init__()
        self._set_from_kwargs(params)

    def space(self, features: int = 1) -> ArchitectureSpace:
        """The architecture space the Params describe; raises ValueError naming a bad bound."""
        return ArchitectureSpace(look_back=(self.getMinLookBack(), self.getMaxLookBack()),
                                 hidden_layers=(self.getMinLayers(), self.getMaxLayers()),
                                 units=(self.getMinUnits(), self.getMaxUnits()),
                                 layer_types=tuple(self.getLayerTypes()), activations=tuple(self.getActivations()),
                                 features=features)

    def algorithm(self) -> GeneticAlgorithm:
        """The genetic algorithm the Params describe; raises ValueError naming a bad setting."""
        return GeneticAlgorithm(population_size=self.getPopulationSize(), generations=self.getGenerations(),
                                crossover_rate=self.getCrossoverRate(), mutation_rate=self.getMutationRate(),
                                elitism=self.getElitism(), tournament_size=self.getTournamentSize(),
                                seed=self.getSeed())

    def _check_columns(self, dataset: DataFrame) -> None:
        columns = set(dataset.columns)
        if not self.isDefined(self.orderBy):
            raise ValueError("`orderBy` is not set: a series needs the column that orders it, e.g. a time column")
        for name, wanted in (("orderBy", [self.getOrderBy()]), ("valueCols", self.getValueCols())):
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise ValueError(f"`{name}` names column(s) {missing} not in the DataFrame; it has: "
                                 f"{', '.join(dataset.columns)}")
        if not self.getValueCols():
            raise ValueError("`valueCols` is empty: give the series' value column(s)")

    def validateParams(self) -> None:
        """Every check that needs no data: the estimator, the space's bounds, the GA settings, the
        training settings; raises ValueError naming the Param. No Spark job."""
        self._check()

    def _check(self) -> None:
        from deepflash.ml.estimator import KerasEstimator

        if not isinstance(self.estimator, KerasEstimator):
            raise ValueError(f"`estimator` must be a KerasEstimator, found {type(self.estimator).__name__}")
        self.space()
        self.algorithm()
        if self.getParallelism() > 1 and self.estimator.getNumProc() > 1:
            raise ValueError(f"`parallelism` == {self.getParallelism()} evaluates in single-process Spark tasks; "
                             f"the refit's numProc == {self.estimator.getNumProc()} is fine, but use "
                             "parallelism=1 when the estimator must train distributed")
        self._training_settings()
        self.estimator.validateParams()

    def _training_settings(self) -> TrainingSettings:
        return TrainingSettings.from_values(self.estimator.paramValues(), self.getOrDefault(self.searchEpochs))

    def _problem(self, series: np.ndarray) -> ArchitectureProblem:
        space = self.space(features=series.shape[1])
        if self.getProblem() == "mae_sampling":
            return MAERandomSamplingProblem(series, space, samples=self.getSamples(), init=self.getSamplingInit(),
                                            threshold=self.getOrDefault(self.threshold), seed=self.getSeed())
        return TrainedErrorProblem(series, space, self._training_settings())

    def _fit(self, dataset: DataFrame) -> EvolutionarySearchModel:
        self._check_columns(dataset)
        self._check()
        started = time.time()
        spark = dataset.sparkSession
        cols = self.getValueCols()
        series = dataset.orderBy(self.getOrderBy()).select(*cols).toPandas().to_numpy(dtype=np.float64)
        problem = self._problem(series)
        ga = self.algorithm()
        # The generations are evaluated on the executors, so their Python must run deepflash.
        check_executors(spark, self.getParallelism())
        evaluator = SparkEvaluator(spark, self.getParallelism())
        fitness_name = "log_p" if self.getProblem() == "mae_sampling" else "val_mae"
        log.info("evolutionary search (%s): %d steps x %d values, population %d, %d generations, "
                 "parallelism %d (%d threads each)", self.getProblem(), len(series), series.shape[1],
                 ga.population_size, ga.generations, evaluator.parallelism, evaluator.threads)
        tracker = SearchTracker(self.getTrack())
        tracker.start(f"evolution-{self.getProblem()}", {name: self.getOrDefault(name) for name in SEARCH_PARAM_NAMES
                                                        if self.isDefined(name) and name != "track"})

        def on_generation(stats: GenerationStats, solutions) -> None:
            leader = max(solutions, key=lambda s: _rank(s.fitness[0], problem.maximize[0]))
            history = {k: [v] for k, v in (("best", stats.best), ("mean", stats.mean), ("worst", stats.worst),
                                           ("best_so_far", stats.best_so_far), ("evaluated", stats.evaluated))
                       if np.isfinite(v)}
            result = TrialResult(TrialStatus.OK, number=stats.generation, metric=stats.best, history=history,
                                 params={"generation": stats.generation, **problem.describe(leader.encoding)})
            try:
                tracker.trial(result, name=f"generation-{stats.generation}")
            except Exception as e:  # tracking must never stop a search
                log.warning("could not log generation %d to MLflow: %s", stats.generation, e)

        try:
            result = ga.run(problem, evaluator, on_generation)
            arch: Architecture = result.decoded
            best_params = {"layers": arch.layer_specs(), "inputShape": arch.input_shape(), "task": "regression"}
            log.info("evolutionary search done in %.0fs: best %s %.4f, look-back %d, layers %s (%s, %s), "
                     "%d distinct evaluations", time.time() - started, fitness_name, result.best.fitness[0],
                     arch.look_back, list(arch.layers), arch.layer_type, arch.activation, result.evaluations)
            best_model = None
            if self.getRefit():
                best_model = self._refit(spark, series, arch, best_params)
        except BaseException as e:
            tracker.end(None, e)
            raise
        run_id = tracker.parent_id
        tracker.end(TrialResult(TrialStatus.OK, number=result.history[-1].generation, metric=result.best.fitness[0],
                                params=arch.as_dict()))

        found = EvolutionarySearchModel()
        self._copyValues(found)
        found._set(bestLookBack=arch.look_back, bestLayers=list(arch.layers), bestLayerType=arch.layer_type,
                   bestActivation=arch.activation, bestFitness=float(result.best.fitness[0]),
                   fitnessName=fitness_name)
        found.setResults(best_model, {k: v for k, v in best_params.items() if v is not None},
                         pd.DataFrame(result.history_rows()))
        found.mlflowRunId = run_id
        found.trackingFailure = tracker.failure
        return found

    def _refit(self, spark, series: np.ndarray, arch: Architecture, best_params: dict):
        """The best architecture trained with the estimator on every window of the series.

        The windows come from :func:`~deepflash.ml.timeseries.window_arrays` (the same rows as
        LookBackWindow), without LookBackWindow's shape metadata: that metadata would make the
        estimator reshape a dense stack's input to ``(look_back, k)``, a network other than the one
        the search scored."""
        from deepflash.data.datasets import from_numpy
        from deepflash.ml.timeseries import window_arrays

        x, y = window_arrays(series, arch.look_back)
        est = self.estimator.copy()
        est._set(**{k: v for k, v in best_params.items() if v is not None})
        frame = from_numpy(spark, x.reshape(len(x), -1), y)
        frame = frame.withColumnRenamed("features", est.getFeaturesCol()).withColumnRenamed("label",
                                                                                             est.getLabelCol())
        return est.fit(frame)


def _rank(value: float, maximize: bool) -> float:
    if np.isnan(value):
        return -np.inf
    return value if maximize else -value


class EvolutionarySearchModel(BaseSearchModel, _EvolutionParams):
    """The search's result: ``bestModel`` (a KerasModel on windows of ``bestLookBack`` steps, flat),
    the best architecture as Params, ``bestParams`` (its KerasEstimator ``layers``, ``inputShape``)
    and ``trials`` (one row per generation: best, mean, worst, best so far, evaluations).

    ``transform`` scores a DataFrame whose features column holds such windows.
    """

    def architecture(self) -> Architecture:
        """The best :class:`~deepflash.evolution.architecture.Architecture`."""
        if not self.isDefined(self.bestLookBack):
            raise ValueError("this EvolutionarySearchModel holds no architecture: get one from EvolutionarySearch.fit")
        return Architecture(self.getBestLookBack(), tuple(self.getBestLayers()), self.getBestLayerType(),
                            self.getBestActivation())

    def modelJson(self) -> str:
        """The best network's Keras config (``to_json``): the trained one's when refit, loadable with
        ``tf.keras.models.model_from_json``."""
        if self.bestModel is not None:
            return self.bestModel.getKerasModel().to_json()
        return self.architecture().model_json()


declare_params(EvolutionarySearchModel, (spec for spec in EVOLUTION_PARAMS if spec.fitted))
add_accessors(EvolutionarySearch, SEARCH_PARAM_NAMES)
add_accessors(EvolutionarySearchModel, names(EVOLUTION_PARAMS), setters=[])
