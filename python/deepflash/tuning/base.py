"""What every search engine shares: the fit (plan, tracking, best trial, refine, refit) and the
result model; the Params are in :mod:`~deepflash.tuning.params`, trials in :mod:`~deepflash.tuning.trial`,
progress lines in :mod:`~deepflash.tuning.progress`, saving and loading in :mod:`~deepflash.tuning.persistence`.

An engine (``hyperopt.search.HyperoptSearch``, ``optuna.search.OptunaSearch``) subclasses
:class:`BaseSearch` and implements one method, :meth:`BaseSearch._run_search`, which runs the trials
of a :class:`SearchSetup` and returns a :class:`SearchOutcome`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import pandas as pd
from pyspark.ml import Estimator, Model
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame

from deepflash.data.plan import FitPlan
from deepflash.reporting.metrics import pareto_mask, satisficing
from deepflash.reporting.tracking import SearchTracker
from deepflash.tuning.params import MEASURED
from deepflash.tuning.persistence import SearchReader, SearchWriter
from deepflash.tuning.progress import Progress
from deepflash.tuning.space import check_refinable, narrow
from deepflash.tuning.trial import TrialResult, TrialStatus, first_error, trials_table

log = logging.getLogger("deepflash")


@dataclass(frozen=True)
class SearchSetup:
    """What an engine needs to run the trials; built once by :meth:`BaseSearch._fit`.

    Args:
        base_values: the estimator's Param values; a trial overrides the searched ones.
        plan: the data, materialized once; ``threads`` already split between parallel trials.
        space: the checked dict space.
    """

    base_values: dict
    plan: FitPlan
    space: dict
    metric: str
    mode: str
    metric_epoch: str
    max_evals: int
    parallelism: int
    timeout: float | None
    seed: int
    objectives: tuple[tuple[str, str], ...] = ()

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def in_tasks(self) -> bool:
        """Whether the trials run as Spark tasks: with ``parallelism > 1``, and with a timeout at
        any parallelism, since only a task can be cancelled when the timeout comes."""
        return trials_in_tasks(self.parallelism, self.timeout)


def trials_in_tasks(parallelism: int, timeout: float | None) -> bool:
    """See :attr:`SearchSetup.in_tasks`."""
    return parallelism > 1 or timeout is not None


@dataclass(frozen=True)
class SearchOutcome:
    """An engine's answer: every trial it ran, numbered, failed and cancelled ones included."""

    trials: tuple[TrialResult, ...]

    def table(self) -> pd.DataFrame:
        """The trials table (:func:`~deepflash.tuning.trial.trials_table`)."""
        return trials_table(self.trials)

    def by_number(self) -> dict[int, TrialResult]:
        return {r.number: r for r in self.trials}

    def first_error(self) -> str:
        """The first failed trial's error, for the all-failed message."""
        return first_error(self.trials)


def trial_threads(spark, parallelism: int) -> int:
    """CPU threads per parallel trial, so that trials sharing an executor do not oversubscribe it.

    An executor runs :func:`~deepflash.spark.slots.count_slots`' ``per_executor`` tasks at once
    (each of ``spark.task.cpus`` cores; the whole machine on local[n]); the trials on one executor
    split its cores evenly. Read from the session's settings (a probe stage where they leave it
    open), so a Connect session answers too.
    """
    from deepflash.spark.session import conf_int
    from deepflash.spark.slots import count_slots

    per_executor = max(1, count_slots(spark).per_executor)
    cores = per_executor * max(1, conf_int(spark, "spark.task.cpus", 1))
    concurrent = max(1, min(parallelism, per_executor))
    return max(1, cores // concurrent)


def tpe_startup_trials(max_evals: int) -> int:
    """Random trials before TPE starts modelling: a quarter of the budget, between 3 and 20.

    hyperopt's default is a fixed 20, which makes a 20-trial TPE search a pure random search.
    """
    return min(20, max(3, max_evals // 4))


class BaseSearch(Estimator, MLReadable, MLWritable):
    """A search over KerasEstimator Params; engines implement :meth:`_run_search`."""

    _engine = "?"

    def _set_from_kwargs(self, kwargs: dict) -> None:
        """The keyword-only constructors' body: the estimator apart, every other given value as a Param."""
        kwargs = dict(kwargs)
        self.setEstimator(kwargs.pop("estimator", None))
        self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def setEstimator(self, estimator) -> BaseSearch:
        self.estimator = estimator
        return self

    def getEstimator(self):
        return self.estimator

    def copy(self, extra=None):
        that = super().copy(extra)
        if self.estimator is not None:
            that.estimator = self.estimator.copy()
        return that

    def validateParams(self) -> None:
        """Every check that can fail before a Spark job: the estimator, the space, the objectives,
        the engine's own, ``refitParams``; raises ValueError (TypeError for a wrong type) naming the Param."""
        from deepflash.ml.estimator import KerasEstimator

        if not isinstance(self.estimator, KerasEstimator):
            raise ValueError(f"`estimator` must be a KerasEstimator, found {type(self.estimator).__name__}")
        if not self.isDefined(self.space):
            raise ValueError("`space` is not set: give at least one dimension, e.g. "
                             "{'learningRate': {'loguniform': [1e-4, 1e-1]}}")
        if self.getParallelism() > 1 and self.estimator.getNumProc() > 1:
            raise ValueError(f"`parallelism` == {self.getParallelism()} runs each trial as one Spark task, which "
                             f"cannot host numProc == {self.estimator.getNumProc()} Horovod processes; use "
                             "parallelism=1 for distributed trials, or numProc=1")
        self._check_objectives()
        if self.getRefine() > 0:
            if len(self.metricList()) > 1:
                raise ValueError(f"`refine` == {self.getRefine()} ranks trials by one metric; `metric` == "
                                 f"{self.metricList()!r} is a multi-objective search: use refine=0")
            check_refinable(self.getOrDefault(self.space))
        self._check_engine()
        self.estimator.validateParams()
        self._check_refit_params()

    def _check_refit_params(self) -> None:
        """Every ``refitParams`` key is an estimator Param, and the refit estimator validates."""
        overrides = self.getOrDefault(self.refitParams)
        if not overrides:
            return
        unknown = [k for k in overrides if not self.estimator.hasParam(k)]
        if unknown:
            raise ValueError(f"`refitParams` key(s) {', '.join(map(repr, unknown))} are not KerasEstimator Params; "
                             "give Params such as epochs, learningRate, earlyStoppingPatience")
        try:
            self.estimator.copy().setParams(**overrides).validateParams()
        except (TypeError, ValueError) as e:
            raise ValueError(f"`refitParams` == {overrides!r}: {e}") from None

    def _refit_estimator(self, best_params: dict):
        """The estimator the refit trains: the best trial's Params, then ``refitParams`` over them."""
        return self.estimator.copy().setParams(**best_params).setParams(**self.getOrDefault(self.refitParams))

    def _check_objectives(self) -> None:
        """Each metric is one the trials record, with one mode each; satisficing names known columns."""
        metrics, modes = self.metricList(), self.modeList()
        if len(modes) != len(metrics):
            raise ValueError(f"`mode` == {self.getOrDefault(self.mode)!r} does not match `metric` == "
                             f"{self.getOrDefault(self.metric)!r}: give one mode (max or min) per metric")
        recorded = self.estimator.historyMetrics()
        known = list(recorded) + list(MEASURED)
        for metric in metrics:
            # Keras names a metric given as a class name in lower case in the history ("AUC" -> "auc").
            if metric.lower() not in {k.lower() for k in known}:
                raise ValueError(f"`metric` {metric!r} is not recorded by the trials; they record: {', '.join(known)}")
        columns = set(known) | {f"final_{m}" for m in recorded} | {"metric", "seconds", "epochs_run"}
        for column in self.getSatisficing():
            if column not in columns:
                raise ValueError(f"`satisficing` column {column!r} is not in the trials table; constrain one of: "
                                 f"{', '.join(sorted(columns))}")

    def _check_engine(self) -> None:
        """The engine's own checks (e.g. a grid needs choice dimensions)."""

    def _strategy(self) -> str:
        """A short name of the strategy for the MLflow parent run (``search-<strategy>``)."""
        raise NotImplementedError

    def _tracked_params(self) -> dict:
        """The engine's Params worth logging on the parent run."""
        return {}

    def _run_search(self, spark, setup: SearchSetup, progress: Progress) -> SearchOutcome:
        raise NotImplementedError

    def _new_model(self) -> BaseSearchModel:
        raise NotImplementedError

    def _fit(self, dataset: DataFrame) -> BaseSearchModel:
        self.validateParams()
        est = self.estimator
        started = time.time()
        spark = dataset.sparkSession
        parallelism = self.getParallelism()
        # Trials train single-process; with parallelism 1 they run in the driver, where the
        # backend's own check (slots, Horovod installed) still applies.
        fraction = self.getOrDefault(self.trialFraction)
        # A sample seeded by the search's seed: every trial sees the same rows.
        trial_data = dataset if fraction >= 1 else dataset.sample(fraction=fraction, seed=self.getSeed())
        timeout = self.timeoutSeconds()
        in_tasks = trials_in_tasks(parallelism, timeout)
        plan = est.plan(trial_data, numProc=1) if in_tasks else est.plan(trial_data)
        if in_tasks:
            plan = plan.replace(threads=trial_threads(spark, parallelism))
        objectives = tuple(zip(self.metricList(), self.modeList(), strict=True))
        metric, mode = objectives[0]
        setup = SearchSetup(base_values=est.paramValues(), plan=plan, space=self.getOrDefault(self.space),
                            metric=metric, mode=mode, metric_epoch=self.getMetricEpoch(),
                            max_evals=self.getMaxEvals(), parallelism=parallelism, timeout=timeout,
                            seed=self.getSeed(), objectives=objectives)
        strategy = self._strategy()
        if fraction < 1:
            log.info("search: trials train on %d rows (trialFraction %g); the refit on all of them",
                     plan.train_rows, fraction)
        log.info("search: %s %s over %s, %d trials, parallelism %d, metric %s (%s)", self._engine, strategy,
                 ", ".join(setup.space), setup.max_evals, parallelism, self.getOrDefault(self.metric),
                 self.getOrDefault(self.mode))
        tracker = SearchTracker(self.getTrack())
        tracker.start(f"search-{strategy}", {"engine": self._engine, **self._tracked_params(),
                                             "maxEvals": setup.max_evals, "parallelism": parallelism,
                                             "metric": self.getOrDefault(self.metric),
                                             "mode": self.getOrDefault(self.mode), "space": setup.space,
                                             "refine": self.getRefine(), "satisficing": self.getSatisficing()})
        # The parent run ends FAILED (KILLED on Ctrl-C) when anything below raises, refit included.
        try:
            progress = Progress(setup.max_evals, setup.mode, setup.metric, tracker)
            trials_started = time.time()
            outcome = self._run_search(spark, setup, progress)
            table = outcome.table().assign(stage=1)
            results, refined = outcome.by_number(), None
            if self.getRefine() > 0:
                table, results, refined = self._refine(spark, setup, progress, table, results, started, tracker)
            # train_rows: what the trials trained on (fewer than the refit's under trialFraction < 1).
            table = table.assign(train_rows=plan.train_rows)
            trials_seconds = time.time() - trials_started
            ok = table[table["status"] == TrialStatus.OK.value] if len(table) else table
            if ok.empty:
                raise RuntimeError(f"all {len(table)} trials failed; the first error: {outcome.first_error()}")
            if setup.multi_objective:
                table = table.assign(pareto=pareto_mask(table, objectives))
            best_row = satisficing(table, "metric", mode, self.getSatisficing())
            best_result = results[int(best_row["trial"])]
            log.info("search done in %.0fs: chose trial %d (%s %.4f%s), %d of %d trials ok%s",
                     time.time() - started, best_row["trial"], metric, best_row["metric"],
                     "".join(f", {m} {best_row[m]:.4g}" for m, _ in objectives[1:]), len(ok), len(table),
                     f", {int(table['pareto'].sum())} on the Pareto front" if setup.multi_objective else "")
            best_model = None
            if self.getRefit():
                best_model = self._refit_estimator(dict(best_result.params)).fit(dataset)
        except BaseException as e:
            tracker.end(None, e)
            raise
        run_id = tracker.parent_id
        tracker.end(best_result)

        found = self._new_model()
        self._copyValues(found)
        found.setResults(best_model, dict(best_result.params), table)
        found.refinedSpace = refined
        found.mlflowRunId = run_id
        found.trackingFailure = tracker.failure
        found.timing = {"search_seconds": time.time() - started, "trials_seconds": trials_seconds}
        return found

    def _refine(self, spark, setup: SearchSetup, progress: Progress, table: pd.DataFrame,
                results: dict[int, TrialResult], started: float, tracker: SearchTracker):
        """The second stage: the same engine over the space narrowed around the first stage's top
        ``refine`` trials; its trials number on after the first's, with ``stage`` 2."""
        k = self.getRefine()
        ok = table[table["status"] == TrialStatus.OK.value]
        if ok.empty:
            log.warning("refine: no trial of the first stage succeeded; no second stage")
            return table, results, None
        top = ok.sort_values("metric", ascending=setup.mode == "min").head(k)
        refined = narrow(setup.space, [dict(results[int(t)].sample or {}) for t in top["trial"]])
        remaining = None if setup.timeout is None else setup.timeout - (time.time() - started)
        if remaining is not None and remaining <= 0:
            log.info("refine: the timeout is spent; no second stage")
            return table, results, refined
        evals = int(self.getOrDefault(self.refineEvals)) if self.isDefined(self.refineEvals) else setup.max_evals
        log.info("refine: stage 2, %d trials in the space around the top %d: %s", evals, len(top), refined)
        tracker.note("refined_space", refined)
        offset = int(table["trial"].max()) + 1
        progress.offset, progress.total = offset, progress.total + evals
        second = self._run_search(spark, replace(setup, space=refined, max_evals=evals, seed=setup.seed + 1,
                                                 timeout=remaining), progress)
        progress.offset = 0
        renumbered = [r.numbered(r.number + offset) for r in second.trials]
        stage2 = trials_table(renumbered).assign(stage=2)
        results.update({r.number: r for r in renumbered})
        return pd.concat([table, stage2], ignore_index=True), results, refined

    @classmethod
    def read(cls):
        return SearchReader(cls)

    def write(self):
        return SearchWriter(self)


class BaseSearchModel(Model, MLReadable, MLWritable):
    """A search's result: ``bestModel`` (a KerasModel), ``bestParams`` and ``trials`` (pandas)."""

    def __init__(self) -> None:
        super().__init__()
        self.bestModel = None
        self.bestParams: dict = {}
        self.trials: pd.DataFrame = pd.DataFrame()
        self.mlflowRunId: str | None = None  # the search's MLflow parent run, when it was tracked
        self.trackingFailure = None  # the MLflow call that failed and turned the search's tracking off
        self.refinedSpace: dict | None = None  # the second stage's space, when the search ran with refine
        # Seconds of the whole fit (plan, trials, refit) and of the trials alone (from the first
        # trial's start to the last one's end, both stages): {"search_seconds", "trials_seconds"}.
        self.timing: dict = {}

    def setResults(self, best_model, best_params: dict, trials: pd.DataFrame) -> None:
        """Sets what the search found: the best model (None without a refit), its Params and the trials table."""
        self.bestModel, self.bestParams, self.trials = best_model, dict(best_params), trials

    @property
    def paretoFront(self) -> pd.DataFrame:
        """The trials no other ok trial dominates on every metric (a multi-objective search; empty otherwise)."""
        if "pareto" not in self.trials.columns:
            return self.trials.iloc[0:0]
        return self.trials[self.trials["pareto"].astype(bool)]

    def plotParetoFront(self, path: str) -> str:
        """Writes the front of a two-metric search as a PNG (see :func:`deepflash.reporting.plots.pareto_front`).

        Example:
            >>> found.plotParetoFront("output/pareto.png")
        """
        from deepflash.reporting import plots

        metrics, modes = self.metricList(), self.modeList()
        if len(metrics) != 2:
            raise ValueError("a Pareto plot needs a search over two metrics; "
                             f"`metric` == {self.getOrDefault(self.metric)!r}")
        return plots.pareto_front(self.trials, metrics, modes, path, chosen=self._chosen_trial(),
                                  constraints=self.getSatisficing())

    def _chosen_trial(self) -> int | None:
        from deepflash.reporting.metrics import satisficing

        try:
            return int(satisficing(self.trials, "metric", self.modeList()[0], self.getSatisficing())["trial"])
        except ValueError:
            return None

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.bestModel is None:
            raise ValueError(f"this {type(self).__name__} has no best model: the search ran with refit=False; "
                             "fit an estimator with `bestParams`")
        return self.bestModel.transform(dataset)

    @classmethod
    def read(cls):
        return SearchReader(cls)

    def write(self):
        return SearchWriter(self)
