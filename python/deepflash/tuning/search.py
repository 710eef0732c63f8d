"""HyperoptSearch: distributed Bayesian (TPE), random, annealing and grid search over KerasEstimator Params.

``parallelism > 1`` runs one trial per Spark task with hyperopt's ``SparkTrials``; each trial trains
a single-process model on its executor from the Parquet that was materialized once in the store.
``parallelism == 1`` runs the trials one after another in the driver with ``Trials``; then a trial
can itself use ``backend="horovod"`` with ``numProc > 1``. SparkTrials cannot run distributed
training inside a trial, so the choice is many small trials at once, or one large trial at a time.
"""
from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasSeed
from pyspark.ml.util import DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import DataFrame

from deepflash.params import _number, _one_of, add_accessors
from deepflash.tracking import SearchTracker
from deepflash.tuning.objective import METRIC_EPOCHS, make_objective
from deepflash.tuning.space import check_space, grid_points, to_hyperopt

log = logging.getLogger("deepflash")
ALGOS = ("tpe", "random", "anneal", "grid")


def _space(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"`space` must be a dict of dimensions, found {type(value).__name__}")
    return check_space(value)


def _optional_positive(name: str):
    positive = _number(name, low=0, low_open=True)

    def convert(value):
        return None if value is None else positive(value)

    return convert


class _SearchParams(HasSeed):
    space = Param(Params._dummy(), "space", "search space: {param: {kind: args}} (see deepflash.tuning.space)", _space)
    algo = Param(Params._dummy(), "algo", "tpe, random, anneal or grid", _one_of("algo", ALGOS))
    maxEvals = Param(Params._dummy(), "maxEvals", "number of trials, >= 1", _number("maxEvals", integer=True, low=1))
    parallelism = Param(Params._dummy(), "parallelism", "trials run at once (SparkTrials when > 1), >= 1",
                        _number("parallelism", integer=True, low=1))
    metric = Param(Params._dummy(), "metric", "history metric that ranks trials, e.g. val_accuracy",
                   TypeConverters.toString)
    mode = Param(Params._dummy(), "mode", "max or min", _one_of("mode", ("max", "min")))
    metricEpoch = Param(Params._dummy(), "metricEpoch", "score a trial by its best or its last epoch",
                        _one_of("metricEpoch", METRIC_EPOCHS))
    timeout = Param(Params._dummy(), "timeout", "seconds after which the search stops; None = no limit",
                    _optional_positive("timeout"))
    refit = Param(Params._dummy(), "refit", "refit the best params on all the training data", TypeConverters.toBoolean)
    track = Param(Params._dummy(), "track", "log the search and its trials to MLflow (when installed)",
                  TypeConverters.toBoolean)
    gridSample = Param(Params._dummy(), "gridSample", "algo=grid: fraction of the grid to evaluate, in (0, 1]",
                       _number("gridSample", low=0, high=1, low_open=True))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(algo="tpe", maxEvals=20, parallelism=1, metric="val_loss", mode="min", metricEpoch="best",
                         refit=True, gridSample=1.0, seed=0, track=True)


SEARCH_PARAMS = ["space", "algo", "maxEvals", "parallelism", "metric", "mode", "metricEpoch", "timeout", "refit",
                 "gridSample", "seed", "track"]


class _Progress:
    """hyperopt's early_stop_fn, used as a per-trial progress hook: one line per finished trial."""

    def __init__(self, total: int, mode: str, metric: str, tracker=None):
        self.total, self.mode, self.metric, self.tracker = total, mode, metric, tracker
        self.started = time.time()
        self.seen: set[int] = set()
        self.best: float | None = None

    def __call__(self, trials, *args):
        for t in trials.trials:
            result = t.get("result") or {}
            if t["tid"] in self.seen or result.get("status") not in ("ok", "fail"):
                continue
            self.seen.add(t["tid"])
            if result["status"] == "ok":
                value = result["metric"]
                if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
                    self.best = value
                this = f"{self.metric}={value:.4f}"
            else:
                this = f"failed ({result.get('error', '?')[:120]})"
            best = "n/a" if self.best is None else f"{self.best:.4f}"
            log.info("trial %d/%d: %s, best so far %s, %.0fs elapsed", len(self.seen), self.total, this, best,
                     time.time() - self.started)
            if self.tracker is not None:
                try:
                    self.tracker.trial(t["tid"], result)
                except Exception as e:  # tracking must never stop a search
                    log.warning("could not log trial %d to MLflow: %s", t["tid"], e)
        return False, []


def _grid_suggest(count: int):
    """A hyperopt algo that proposes grid point 0, 1, 2 ... of a ``hp.choice('grid_index', points)`` space."""
    from hyperopt.base import miscs_update_idxs_vals

    state = {"next": 0}

    def suggest(new_ids, domain, trials, seed):
        docs = []
        for new_id in new_ids:
            index = state["next"] % count
            state["next"] += 1
            misc = dict(tid=new_id, cmd=domain.cmd, workdir=domain.workdir)
            miscs_update_idxs_vals([misc], {"grid_index": [new_id]}, {"grid_index": [index]})
            docs.extend(trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc]))
        return docs

    return suggest


class HyperoptSearch(Estimator, _SearchParams, MLReadable, MLWritable):
    """Searches KerasEstimator Params with hyperopt, spread over the cluster with SparkTrials.

    Args:
        estimator: the KerasEstimator whose Params are searched; its other Params stay fixed.
        space: ``{"learningRate": {"loguniform": [1e-4, 1e-1]}, "optimizer": {"choice": [...]}, ...}``.
        algo: tpe (Bayesian), random, anneal, or grid (the Cartesian product of ``choice`` dimensions;
            ``gridSample`` evaluates a random fraction of it).
        metric, mode: what ranks trials, read from each trial's validation history at its best or
            last epoch (``metricEpoch``).

    Example:
        >>> search = HyperoptSearch(estimator=est, space={"learningRate": {"loguniform": [1e-4, 1e-1]}},
        ...                         algo="tpe", maxEvals=30, parallelism=4, metric="val_accuracy", mode="max")
        >>> found = search.fit(train_df)
        >>> found.bestParams, found.trials, found.transform(test_df)
    """

    @keyword_only
    def __init__(self, *, estimator=None, space: dict | None = None, algo: str = "tpe", maxEvals: int = 20,
                 parallelism: int = 1, metric: str = "val_loss", mode: str = "min", metricEpoch: str = "best",
                 timeout: float | None = None, refit: bool = True, gridSample: float = 1.0, seed: int = 0,
                 track: bool = True) -> None:
        super().__init__()
        self.estimator = None
        kwargs = dict(self._input_kwargs)
        self.setEstimator(kwargs.pop("estimator", None))
        self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def setEstimator(self, estimator) -> "HyperoptSearch":
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
        from deepflash.estimator import KerasEstimator

        if not isinstance(self.estimator, KerasEstimator):
            raise ValueError(f"`estimator` must be a KerasEstimator, found {type(self.estimator).__name__}")
        if not self.isDefined(self.space):
            raise ValueError("`space` is not set: give at least one dimension, e.g. "
                             "{'learningRate': {'loguniform': [1e-4, 1e-1]}}")
        if self.getAlgo() == "grid":
            grid_points(self.getOrDefault(self.space))
        if self.getParallelism() > 1 and self.estimator.getNumProc() > 1:
            raise ValueError(f"`parallelism` == {self.getParallelism()} runs each trial as one Spark task, which "
                             f"cannot host numProc == {self.estimator.getNumProc()} Horovod processes; use "
                             "parallelism=1 for distributed trials, or numProc=1")
        self.estimator.validateParams()

    def _fit(self, dataset: DataFrame) -> "HyperoptSearchModel":
        from hyperopt import anneal, hp, rand, tpe

        from deepflash.backends import get_backend

        self._check()
        est = self.estimator
        started = time.time()
        spark = dataset.sparkSession
        space = self.getOrDefault(self.space)
        metric, mode, algo_name = self.getMetric(), self.getMode(), self.getAlgo()
        parallelism = self.getParallelism()
        # Trials train single-process; with parallelism 1 they run in the driver, where the
        # backend's own check (slots, Horovod installed) still applies.
        plan = est.plan(dataset) if parallelism == 1 else est.plan(dataset, numProc=1)
        if parallelism > 1:
            plan = plan.replace(threads=trial_threads(spark, parallelism))
        base_values = est.paramValues()
        objective = make_objective(base_values, plan, metric, mode, self.getMetricEpoch())

        if algo_name == "grid":
            points = grid_points(space, None if self.getGridSample() >= 1 else self.getGridSample(), self.getSeed())
            max_evals = min(self.getMaxEvals(), len(points))
            hyperopt_space = {"grid": hp.choice("grid_index", points)}
            algo = _grid_suggest(len(points))
            fn = _unwrap_grid(objective)
        else:
            max_evals = self.getMaxEvals()
            hyperopt_space = to_hyperopt(space)
            algo = {"tpe": functools.partial(tpe.suggest, n_startup_jobs=tpe_startup_trials(max_evals)),
                    "random": rand.suggest, "anneal": anneal.suggest}[algo_name]
            fn = objective
        timeout = self.getOrDefault(self.timeout) if self.isDefined(self.timeout) else None
        log.info("search: %s over %s, %d trials, parallelism %d, metric %s (%s)", algo_name, ", ".join(space),
                 max_evals, parallelism, metric, mode)
        tracker = SearchTracker(self.getTrack())
        tracker.start(f"search-{algo_name}", {"algo": algo_name, "maxEvals": max_evals, "parallelism": parallelism,
                                              "metric": metric, "mode": mode, "space": space})
        # The parent run ends FAILED (KILLED on Ctrl-C) when anything below raises, refit included.
        try:
            trials = self._run_trials(spark, fn, hyperopt_space, algo, max_evals, timeout,
                                      _Progress(max_evals, mode, metric, tracker))
            table = trials_table(trials)
            ok = table[table["status"] == "ok"]
            if ok.empty:
                raise RuntimeError(f"all {len(table)} trials failed; the first error: {_first_error(trials)}")
            best_row = ok.loc[ok["metric"].idxmax() if mode == "max" else ok["metric"].idxmin()]
            best_result = next(t for t in trials.trials if t["tid"] == best_row["trial"])["result"]
            log.info("search done in %.0fs: best %s %.4f (trial %d), %d of %d trials ok", time.time() - started,
                     metric, best_row["metric"], best_row["trial"], len(ok), len(table))
            best_model = None
            if self.getRefit():
                best_est = est.copy()
                best_est._set(**best_result["params"])
                best_model = best_est.fit(dataset)
        except BaseException as e:
            tracker.end(None, e)
            raise
        run_id = tracker.parent_id
        tracker.end(best_result)

        found = HyperoptSearchModel()
        self._copyValues(found)
        found._set_results(best_model, best_result["params"], table)
        found.mlflowRunId = run_id
        return found

    def _run_trials(self, spark, fn, hyperopt_space, algo, max_evals: int, timeout: float | None, progress):
        """Runs fmin in a job group of its own; returns the hyperopt Trials, failed trials included."""
        from hyperopt import SparkTrials, Trials, fmin
        from hyperopt.exceptions import AllTrialsFailed

        parallelism = self.getParallelism()
        if parallelism > 1:
            trials = SparkTrials(parallelism=parallelism, timeout=timeout, spark_session=spark)
        else:
            trials = Trials()
        sc = spark.sparkContext
        # SparkTrials launches its trial jobs in the caller's job group. Our own group lets us cancel
        # (and interrupt) whatever is still running when fmin returns: a timeout, an error, Ctrl-C.
        group = f"deepflash-search-{uuid.uuid4().hex[:12]}"
        previous = {key: sc.getLocalProperty(key) for key in
                    ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")}
        sc.setJobGroup(group, f"deepflash {self.getAlgo()} search trials", interruptOnCancel=True)
        try:
            try:
                # return_argmin=False: with it, a timeout before any trial finished raises a bare
                # Exception; without it, the caller reports the unfinished trials.
                fmin(fn, hyperopt_space, algo=algo, max_evals=max_evals, trials=trials, timeout=timeout,
                     rstate=np.random.default_rng(self.getSeed()), early_stop_fn=progress, show_progressbar=False,
                     return_argmin=False)
            except AllTrialsFailed:
                pass  # reported by the caller with the first trial's error, which hyperopt does not show
            progress(trials)  # trials that finished after hyperopt's last call
        finally:
            if parallelism > 1:
                sc.cancelJobGroup(group)
            for key, value in previous.items():
                sc.setLocalProperty(key, value)
        return trials

    @classmethod
    def read(cls):
        return _SearchReader(cls)

    def write(self):
        return _SearchWriter(self)


def tpe_startup_trials(max_evals: int) -> int:
    """Random trials before TPE starts modelling: a quarter of the budget, between 3 and 20.

    hyperopt's default is a fixed 20, which makes a 20-trial TPE search a pure random search.
    """
    return min(20, max(3, max_evals // 4))


def trial_threads(spark, parallelism: int) -> int:
    """CPU threads per SparkTrials trial, so that trials sharing an executor do not oversubscribe it.

    An executor runs up to ``spark.executor.cores`` tasks (the whole machine on local[n]); the
    trials on one executor split its cores evenly.
    """
    conf = spark.sparkContext.getConf()
    cores = int(conf.get("spark.executor.cores", "0") or 0) or spark.sparkContext.defaultParallelism
    task_cpus = int(conf.get("spark.task.cpus", "1") or 1)
    concurrent = max(1, min(parallelism, cores // max(1, task_cpus)))
    return max(1, cores // concurrent)


def _unwrap_grid(objective):
    def fn(sample):
        return objective(sample["grid"])

    return fn


def _all_trials(trials) -> list[dict]:
    """Every trial doc by tid, including those SparkTrials cancelled at a timeout or lost to a failed
    Spark task (hyperopt's ``trials.trials`` leaves cancelled and errored docs out)."""
    return sorted(getattr(trials, "_dynamic_trials", trials.trials), key=lambda t: t["tid"])


def _trial_error(trial: dict) -> str | None:
    """A failed trial's traceback (which ends with its error), or why it has no result."""
    from hyperopt.base import JOB_STATE_ERROR

    result = trial.get("result") or {}
    status = result.get("status")
    if status == "ok":
        return None
    if status == "fail":
        return result.get("traceback") or result.get("error")
    error = (trial.get("misc") or {}).get("error")
    if trial.get("state") == JOB_STATE_ERROR and error:
        return f"the trial's Spark task failed: {error[0]}\n{error[1] or ''}".rstrip()
    return "cancelled or not finished (timeout)"


def _first_error(trials) -> str:
    """The first failed trial's error message, then its traceback."""
    for t in _all_trials(trials):
        result = t.get("result") or {}
        error = _trial_error(t)
        if error is not None:
            return f"{result['error']}\n{error}" if result.get("error") and result["error"] != error else error
    return "none recorded (timeout?)"


def trials_table(trials) -> pd.DataFrame:
    """One row per trial: params, metric, final metrics, epochs, seconds, status and error (a failed
    trial's traceback, whose last line is the error)."""
    rows = []
    for t in _all_trials(trials):
        result = t.get("result") or {}
        row = {"trial": t["tid"], "status": "ok" if result.get("status") == "ok" else "failed",
               "metric": result.get("metric", np.nan), "epochs": result.get("epochs", 0),
               "seconds": result.get("seconds", np.nan), "num_params": result.get("num_params", np.nan),
               "latency_ms": result.get("latency_ms", np.nan), "error": _trial_error(t)}
        for k, v in (result.get("params") or {}).items():
            row[k] = v if not isinstance(v, (list, dict)) else str(v)
        for k, v in (result.get("final") or {}).items():
            row[f"final_{k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


class HyperoptSearchModel(Model, _SearchParams, MLReadable, MLWritable):
    """The search's result: ``bestModel`` (a KerasModel), ``bestParams`` and ``trials`` (pandas)."""

    def __init__(self) -> None:
        super().__init__()
        self.bestModel = None
        self.bestParams: dict = {}
        self.trials: pd.DataFrame = pd.DataFrame()
        self.mlflowRunId: str | None = None  # the search's MLflow parent run, when it was tracked

    def _set_results(self, best_model, best_params: dict, trials: pd.DataFrame) -> None:
        self.bestModel, self.bestParams, self.trials = best_model, dict(best_params), trials

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.bestModel is None:
            raise ValueError("this HyperoptSearchModel has no best model: the search ran with refit=False; "
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
        from deepflash.store import Store

        try:
            DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        except TypeError as e:
            raise TypeError(f"this search cannot be saved: its `space` holds raw hyperopt expressions ({e}); "
                            "use the dict form to save it") from None
        store = Store(path)
        inst = self.instance
        if isinstance(inst, HyperoptSearch):
            if inst.estimator is not None:
                inst.estimator.write().save(store.join("estimator"))
            return
        if inst.bestModel is not None:
            inst.bestModel.write().save(store.join("bestModel"))
        store.write_json(store.join("bestParams.json"), inst.bestParams)
        store.write_bytes(store.join("trials.json"), inst.trials.to_json(orient="records").encode())


class _SearchReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        from io import StringIO

        from deepflash.estimator import KerasEstimator
        from deepflash.model import KerasModel
        from deepflash.persistence import load_params_instance
        from deepflash.store import Store

        instance = load_params_instance(self.cls, path, self.sc)
        store = Store(path)
        if isinstance(instance, HyperoptSearch):
            if store.exists(store.join("estimator")):
                instance.setEstimator(KerasEstimator.load(store.join("estimator")))
            return instance
        best = KerasModel.load(store.join("bestModel")) if store.exists(store.join("bestModel")) else None
        trials = pd.read_json(StringIO(store.read_bytes(store.join("trials.json")).decode()), orient="records")
        instance._set_results(best, store.read_json(store.join("bestParams.json")), trials)
        return instance


add_accessors(HyperoptSearch, SEARCH_PARAMS)
add_accessors(HyperoptSearchModel, SEARCH_PARAMS)
