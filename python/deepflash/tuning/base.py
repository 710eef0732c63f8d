"""What every search engine shares: the Params, the fit (plan, tracking, best trial, refit), the
result model, its persistence, progress lines and the trials table.

An engine (``search.HyperoptSearch``, ``optuna_search.OptunaSearch``) subclasses :class:`BaseSearch`
and implements one method, :meth:`BaseSearch._run_search`, which runs the trials of a
:class:`SearchSetup` and returns a :class:`SearchOutcome`.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasSeed
from pyspark.ml.util import DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import DataFrame

from deepflash.reporting.metrics import pareto_mask, satisficing
from deepflash.ml.converters import to_choice, to_number
from deepflash.data.plan import FitPlan
from deepflash.reporting.tracking import SearchTracker
from deepflash.tuning.objective import METRIC_EPOCHS
from deepflash.tuning.space import check_refinable, check_space, narrow

log = logging.getLogger("deepflash")
# A trial ends ok (scored), failed (error, cancelled) or pruned (stopped early by the pruner).
STATUSES = ("ok", "failed", "pruned")


def _space(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"`space` must be a dict of dimensions, found {type(value).__name__}")
    return check_space(value)


def _metrics(value: Any) -> str | list[str]:
    """One metric name, or a non-empty list of them (a multi-objective search)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        if len(set(value)) != len(value):
            raise ValueError(f"`metric` == {list(value)!r} names a metric twice")
        return value[0] if len(value) == 1 else list(value)
    raise TypeError(f"`metric` == {value!r}, must be a metric name or a non-empty list of them")


def _modes(value: Any) -> str | list[str]:
    """``max``/``min``, or a list of them, one per metric."""
    one = to_choice("mode", ("max", "min"))
    if isinstance(value, (list, tuple)) and value:
        modes = [one(v) for v in value]
        return modes[0] if len(modes) == 1 else modes
    return one(value)


def _refit_params(value: Any) -> dict:
    """``{param: value}``: names are checked against the estimator when the search is checked."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"`refitParams` == {value!r}, must be a dict of estimator Params such as {{'epochs': 30}}")
    return dict(value)


def _constraints(value: Any) -> dict:
    """``{column: "<= 100"}``: each constraint as evaluation.satisficing takes it, checked now."""
    from deepflash.reporting.metrics import parse_constraint

    if not isinstance(value, dict):
        raise TypeError(f"`satisficing` == {value!r}, must be a dict such as {{'latency_ms': '<= 100'}}")
    out = {}
    for column, text in value.items():
        if isinstance(text, (list, tuple)) and len(text) == 2:
            text = f"{text[0]} {text[1]}"
        try:
            parse_constraint(column, text)
        except ValueError as e:
            raise ValueError(f"`satisficing`: {e}") from None
        out[str(column)] = text if isinstance(text, str) else f"<= {text}"
    return out


def _optional(convert):
    """``convert``, letting None through (the Param's "no limit" or "as the default")."""

    def optional(value):
        return None if value is None else convert(value)

    return optional


def _optional_positive(name: str):
    return _optional(to_number(name, low=0, low_open=True))


class _CommonSearchParams(HasSeed):
    space = Param(Params._dummy(), "space", "search space: {param: {kind: args}} (see deepflash.tuning.space)", _space)
    maxEvals = Param(Params._dummy(), "maxEvals", "number of trials, >= 1", to_number("maxEvals", integer=True, low=1))
    parallelism = Param(Params._dummy(), "parallelism", "trials run at once (one Spark task each when > 1), >= 1",
                        to_number("parallelism", integer=True, low=1))
    metric = Param(Params._dummy(), "metric", "history metric that ranks trials, e.g. val_accuracy, or latency_ms "
                   "or num_params; a list of them is a multi-objective search (OptunaSearch)", _metrics)
    mode = Param(Params._dummy(), "mode", "max or min; a list, one per metric, with a metric list", _modes)
    metricEpoch = Param(Params._dummy(), "metricEpoch", "score a trial by its best or its last epoch",
                        to_choice("metricEpoch", METRIC_EPOCHS))
    timeout = Param(Params._dummy(), "timeout", "seconds after which the search stops; None = no limit",
                    _optional_positive("timeout"))
    refit = Param(Params._dummy(), "refit", "refit the best params on all the training data", TypeConverters.toBoolean)
    track = Param(Params._dummy(), "track", "log the search and its trials to MLflow (when installed)",
                  TypeConverters.toBoolean)
    satisficing = Param(Params._dummy(), "satisficing", "constraints on trials-table columns that the chosen "
                        "trial must meet, e.g. {'latency_ms': '<= 100'}; the best by the first metric among them",
                        _constraints)
    refine = Param(Params._dummy(), "refine", "k > 0: a second search in the space narrowed around the top k "
                   "trials of the first; 0 = off", to_number("refine", integer=True, low=0))
    refineEvals = Param(Params._dummy(), "refineEvals", "trials of the second (refine) stage; None = maxEvals",
                        _optional(to_number("refineEvals", integer=True, low=1)))
    trialFraction = Param(Params._dummy(), "trialFraction", "the fraction of the training rows the trials train "
                          "and validate on (a seeded sample, materialized once); the refit uses all rows; in (0, 1]",
                          to_number("trialFraction", low=0, low_open=True, high=1))
    refitParams = Param(Params._dummy(), "refitParams", "estimator Params the refit uses over the best trial's, "
                        "e.g. {'epochs': 30} after short trials; {} = the best trial's as they are", _refit_params)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(maxEvals=20, parallelism=1, metric="val_loss", mode="min", metricEpoch="best",
                         refit=True, seed=0, track=True, satisficing={}, refine=0, trialFraction=1.0,
                         refitParams={})

    def metricList(self) -> list[str]:
        """``metric`` as a list (one name for a single-objective search)."""
        metric = self.getOrDefault(self.metric)
        return [metric] if isinstance(metric, str) else list(metric)

    def modeList(self) -> list[str]:
        """``mode`` as a list, one per metric (a single mode applies to a single metric)."""
        mode = self.getOrDefault(self.mode)
        return [mode] if isinstance(mode, str) else list(mode)


COMMON_PARAMS = ["space", "maxEvals", "parallelism", "metric", "mode", "metricEpoch", "timeout", "refit", "seed",
                 "track", "satisficing", "refine", "refineEvals", "trialFraction", "refitParams"]
# Trial measurements a search can rank or constrain by besides the history metrics.
MEASURED = ("latency_ms", "num_params")


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


@dataclass
class SearchOutcome:
    """An engine's answer: the trials table, the full result of each ok trial by its number, the
    first failed trial's error (for the all-failed message), and engine-specific extras."""

    table: pd.DataFrame
    results: dict[int, dict]
    first_error: str
    extras: dict = field(default_factory=dict)


class Progress:
    """One log line per finished trial (its metric, the best so far), and its MLflow nested run."""

    def __init__(self, total: int, mode: str, metric: str, tracker: SearchTracker | None = None):
        self.total, self.mode, self.metric, self.tracker = total, mode, metric, tracker
        self.started = time.time()
        self.seen: set[int] = set()
        self.best: float | None = None
        self.offset = 0   # added to an engine's trial numbers: the refine stage numbers on from the first

    def report(self, number: int, result: dict) -> None:
        """Logs and tracks trial ``number`` once; ``result`` is the trial function's result dict."""
        number += self.offset
        if number in self.seen:
            return
        self.seen.add(number)
        status = result.get("status")
        if status == "ok":
            value = result["metric"]
            if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
                self.best = value
            this = f"{self.metric}={value:.4f}"
        elif status == "pruned":
            this = f"pruned after {result.get('epochs', '?')} epochs"
        else:
            this = f"failed ({(result.get('error') or '?')[:120]})"
        best = "n/a" if self.best is None else f"{self.best:.4f}"
        log.info("trial %d/%d: %s, best so far %s, %.0fs elapsed", len(self.seen), self.total, this, best,
                 time.time() - self.started)
        if self.tracker is not None:
            try:
                self.tracker.trial(number, result)
            except Exception as e:  # tracking must never stop a search
                log.warning("could not log trial %d to MLflow: %s", number, e)


def table_row(number: int, status: str, result: dict, error: str | None) -> dict:
    """One trials-table row: params, metric, final metrics, epochs, seconds, status and error (a
    failed trial's traceback, whose last line is the error).

    ``epochs_run`` is how many epochs the trial trained (fewer than asked when pruned or stopped
    early); ``epochs`` is the trial's ``epochs`` Param, as every Param the trial ran with.
    """
    row = {"trial": number, "status": status, "metric": result.get("metric", np.nan), "epochs": result.get("epochs", 0),
           "epochs_run": result.get("epochs", 0),
           "seconds": result.get("seconds", np.nan), "num_params": result.get("num_params", np.nan),
           "latency_ms": result.get("latency_ms", np.nan), "error": error}
    for k, v in (result.get("params") or {}).items():
        row[k] = v if not isinstance(v, (list, dict)) else str(v)
    for k, v in (result.get("final") or {}).items():
        row[f"final_{k}"] = v
    for k, v in (result.get("objectives") or {}).items():
        row.setdefault(k, v)
    return row


@contextlib.contextmanager
def job_group(sc, description: str, cancel: bool):
    """Runs the block's Spark jobs (and those of threads it starts) in a job group of their own;
    with ``cancel``, cancels and interrupts whatever of it still runs when the block exits: a
    timeout, an error, Ctrl-C. Restores the caller's job group. Yields the group id."""
    group = f"deepflash-search-{uuid.uuid4().hex[:12]}"
    previous = {key: sc.getLocalProperty(key) for key in
                ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")}
    sc.setJobGroup(group, description, interruptOnCancel=True)
    try:
        yield group
    finally:
        if cancel:
            sc.cancelJobGroup(group)
        for key, value in previous.items():
            sc.setLocalProperty(key, value)


def trial_threads(spark, parallelism: int) -> int:
    """CPU threads per parallel trial, so that trials sharing an executor do not oversubscribe it.

    An executor runs up to ``spark.executor.cores`` tasks (the whole machine on local[n]); the
    trials on one executor split its cores evenly.
    """
    conf = spark.sparkContext.getConf()
    cores = int(conf.get("spark.executor.cores", "0") or 0) or spark.sparkContext.defaultParallelism
    task_cpus = int(conf.get("spark.task.cpus", "1") or 1)
    concurrent = max(1, min(parallelism, cores // max(1, task_cpus)))
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

    def setEstimator(self, estimator) -> "BaseSearch":
        self.estimator = estimator
        return self

    def getEstimator(self):
        return self.estimator

    def copy(self, extra=None):
        that = super().copy(extra)
        if self.estimator is not None:
            that.estimator = self.estimator.copy()
        return that

    def _check(self) -> None:
        """Every check that can fail before a Spark job: the estimator, the space, the engine's own."""
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

    def _new_model(self) -> "BaseSearchModel":
        raise NotImplementedError

    def _fit(self, dataset: DataFrame) -> "BaseSearchModel":
        self._check()
        est = self.estimator
        started = time.time()
        spark = dataset.sparkSession
        parallelism = self.getParallelism()
        # Trials train single-process; with parallelism 1 they run in the driver, where the
        # backend's own check (slots, Horovod installed) still applies.
        fraction = self.getOrDefault(self.trialFraction)
        # A sample seeded by the search's seed: every trial sees the same rows.
        trial_data = dataset if fraction >= 1 else dataset.sample(fraction=fraction, seed=self.getSeed())
        plan = est.plan(trial_data) if parallelism == 1 else est.plan(trial_data, numProc=1)
        if parallelism > 1:
            plan = plan.replace(threads=trial_threads(spark, parallelism))
        objectives = tuple(zip(self.metricList(), self.modeList()))
        metric, mode = objectives[0]
        setup = SearchSetup(base_values=est.paramValues(), plan=plan, space=self.getOrDefault(self.space),
                            metric=metric, mode=mode, metric_epoch=self.getMetricEpoch(),
                            max_evals=self.getMaxEvals(), parallelism=parallelism,
                            timeout=self.getOrDefault(self.timeout) if self.isDefined(self.timeout) else None,
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
            table = outcome.table.assign(stage=1)
            results, refined = dict(outcome.results), None
            if self.getRefine() > 0:
                table, results, refined = self._refine(spark, setup, progress, table, results, outcome,
                                                       started, tracker)
            # train_rows: what the trials trained on (fewer than the refit's under trialFraction < 1).
            table = table.assign(train_rows=plan.train_rows)
            trials_seconds = time.time() - trials_started
            ok = table[table["status"] == "ok"] if len(table) else table
            if ok.empty:
                raise RuntimeError(f"all {len(table)} trials failed; the first error: {outcome.first_error}")
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
                best_model = self._refit_estimator(best_result["params"]).fit(dataset)
        except BaseException as e:
            tracker.end(None, e)
            raise
        run_id = tracker.parent_id
        tracker.end(best_result)

        found = self._new_model()
        self._copyValues(found)
        found._set_results(best_model, best_result["params"], table)
        found.refinedSpace = refined
        found.mlflowRunId = run_id
        found.timing = {"search_seconds": time.time() - started, "trials_seconds": trials_seconds}
        return found

    def _refine(self, spark, setup: SearchSetup, progress: Progress, table: pd.DataFrame, results: dict,
                outcome: SearchOutcome, started: float, tracker: SearchTracker):
        """The second stage: the same engine over the space narrowed around the first stage's top
        ``refine`` trials; its trials number on after the first's, with ``stage`` 2."""
        k = self.getRefine()
        ok = table[table["status"] == "ok"]
        if ok.empty:
            log.warning("refine: no trial of the first stage succeeded; no second stage")
            return table, results, None
        top = ok.sort_values("metric", ascending=setup.mode == "min").head(k)
        refined = narrow(setup.space, [results[int(t)]["sample"] for t in top["trial"]])
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
        stage2 = second.table.assign(stage=2)
        stage2["trial"] = stage2["trial"] + offset
        results.update({number + offset: result for number, result in second.results.items()})
        return pd.concat([table, stage2], ignore_index=True), results, refined

    @classmethod
    def read(cls):
        return _SearchReader(cls)

    def write(self):
        return _SearchWriter(self)


class BaseSearchModel(Model, MLReadable, MLWritable):
    """A search's result: ``bestModel`` (a KerasModel), ``bestParams`` and ``trials`` (pandas)."""

    def __init__(self) -> None:
        super().__init__()
        self.bestModel = None
        self.bestParams: dict = {}
        self.trials: pd.DataFrame = pd.DataFrame()
        self.mlflowRunId: str | None = None  # the search's MLflow parent run, when it was tracked
        self.refinedSpace: dict | None = None  # the second stage's space, when the search ran with refine
        # Seconds of the whole fit (plan, trials, refit) and of the trials alone (from the first
        # trial's start to the last one's end, both stages): {"search_seconds", "trials_seconds"}.
        self.timing: dict = {}

    def _set_results(self, best_model, best_params: dict, trials: pd.DataFrame) -> None:
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
            raise ValueError(f"a Pareto plot needs a search over two metrics; `metric` == {self.getOrDefault(self.metric)!r}")
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
        return _SearchReader(cls)

    def write(self):
        return _SearchWriter(self)


class _SearchWriter(MLWriter):
    """Params metadata, plus the estimator (search) or best model, bestParams and trials (model)."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from deepflash.io.store import Store

        try:
            DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        except TypeError as e:
            raise TypeError(f"this search cannot be saved: its `space` holds raw hyperopt expressions ({e}); "
                            "use the dict form to save it") from None
        store = Store(path)
        inst = self.instance
        if isinstance(inst, BaseSearch):
            if inst.estimator is not None:
                inst.estimator.write().save(store.join("estimator"))
            return
        if inst.bestModel is not None:
            inst.bestModel.write().save(store.join("bestModel"))
        store.write_json(store.join("bestParams.json"), inst.bestParams)
        store.write_bytes(store.join("trials.json"), inst.trials.to_json(orient="records").encode())
        if inst.refinedSpace is not None:
            store.write_json(store.join("refinedSpace.json"), inst.refinedSpace)
        if inst.timing:
            store.write_json(store.join("timing.json"), inst.timing)


class _SearchReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        from io import StringIO

        from deepflash.ml.estimator import KerasEstimator
        from deepflash.ml.model import KerasModel
        from deepflash.ml.persistence import load_params_instance
        from deepflash.io.store import Store

        instance = load_params_instance(self.cls, path, self.sc)
        store = Store(path)
        if isinstance(instance, BaseSearch):
            if store.exists(store.join("estimator")):
                instance.setEstimator(KerasEstimator.load(store.join("estimator")))
            return instance
        best = KerasModel.load(store.join("bestModel")) if store.exists(store.join("bestModel")) else None
        trials = pd.read_json(StringIO(store.read_bytes(store.join("trials.json")).decode()), orient="records")
        instance._set_results(best, store.read_json(store.join("bestParams.json")), trials)
        if store.exists(store.join("refinedSpace.json")):
            instance.refinedSpace = store.read_json(store.join("refinedSpace.json"))
        if store.exists(store.join("timing.json")):
            instance.timing = store.read_json(store.join("timing.json"))
        return instance
