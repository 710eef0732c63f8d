"""HyperoptSearch: distributed Bayesian (TPE), random, annealing and grid search over KerasEstimator Params.

``parallelism > 1`` runs one trial per Spark job (:mod:`deepflash.tuning.hyperopt.dispatch`, which
replaces hyperopt's polling ``SparkTrials``); each trial trains
a single-process model on its executor from the Parquet that was materialized once in the store.
``parallelism == 1`` without a ``timeout`` runs the trials one after another in the driver with
``Trials``; with a ``timeout`` they run one Spark job each, one at a time, so that the timeout can
cancel the running one. A Spark task cannot run distributed
training inside a trial, so the choice is many small trials at once, or one large trial at a time.
"""
from __future__ import annotations

import functools
import logging

import numpy as np
from pyspark import keyword_only
from pyspark.ml.param import Param, Params

from deepflash.ml.converters import add_accessors, to_choice, to_number
from deepflash.spark.tags import tagged_jobs
from deepflash.tuning.base import (
    BaseSearch,
    BaseSearchModel,
    SearchOutcome,
    SearchSetup,
    tpe_startup_trials,
    trial_threads,
    trials_in_tasks,
)
from deepflash.tuning.hyperopt.dispatch import run_spark_trials
from deepflash.tuning.hyperopt.space import grid_points, to_hyperopt
from deepflash.tuning.hyperopt.trials import all_results, finished, result_to_hyperopt, trials_table
from deepflash.tuning.objective import make_objective
from deepflash.tuning.params import COMMON_PARAMS, CommonSearchParams
from deepflash.tuning.progress import Progress

log = logging.getLogger("deepflash")
ALGOS = ("tpe", "random", "anneal", "grid")
# tpe_startup_trials and trial_threads (base) and trials_table (trials) are public from here too.
__all__ = ["HyperoptSearch", "HyperoptSearchModel", "tpe_startup_trials", "trial_threads", "trials_table"]


class _SearchParams(CommonSearchParams):
    algo = Param(Params._dummy(), "algo", "tpe, random, anneal or grid", to_choice("algo", ALGOS))
    gridSample = Param(Params._dummy(), "gridSample", "algo=grid: fraction of the grid to evaluate, in (0, 1]",
                       to_number("gridSample", low=0, high=1, low_open=True))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(algo="tpe", gridSample=1.0)


SEARCH_PARAMS = COMMON_PARAMS + ["algo", "gridSample"]


class _HyperoptProgress:
    """hyperopt's early_stop_fn, used as a per-trial progress hook over :class:`Progress`."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __call__(self, trials, *args):
        for result in finished(trials):
            self.progress.report(result)
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


class HyperoptSearch(BaseSearch, _SearchParams):
    """Searches KerasEstimator Params with hyperopt, spread over the cluster (one Spark job per trial).

    Args:
        estimator: the KerasEstimator whose Params are searched; its other Params stay fixed.
        space: ``{"learningRate": {"loguniform": [1e-4, 1e-1]}, "optimizer": {"choice": [...]}, ...}``.
        algo: tpe (Bayesian), random, anneal, or grid (the Cartesian product of ``choice`` dimensions;
            ``gridSample`` evaluates a random fraction of it).
        metric, mode: what ranks trials, read from each trial's validation history at its best or
            last epoch (``metricEpoch``).
        refine: k > 0 runs a second stage of ``refineEvals`` trials in the space narrowed around the
            top k trials (``space.narrow``); ``trials`` has a ``stage`` column, ``refinedSpace`` the space.
        satisficing: constraints the chosen trial meets, e.g. ``{"latency_ms": "<= 5"}``.
        trialFraction: trials train and validate on this seeded fraction of the training rows
            (e.g. 0.25 for cheap trials); the refit uses all of them.
        refitParams: estimator Params the refit sets over the best trial's, e.g. ``{"epochs": 30}``
            after short trials.

    Example:
        >>> search = HyperoptSearch(estimator=est, space={"learningRate": {"loguniform": [1e-4, 1e-1]}},
        ...                         algo="tpe", maxEvals=30, parallelism=4, metric="val_accuracy", mode="max")
        >>> found = search.fit(train_df)
        >>> found.bestParams, found.trials, found.transform(test_df)
    """

    _engine = "hyperopt"

    @keyword_only
    def __init__(self, *, estimator=None, space: dict | None = None, algo: str = "tpe", maxEvals: int = 20,
                 parallelism: int = 1, metric: str = "val_loss", mode: str = "min", metricEpoch: str = "best",
                 timeout: float | None = None, refit: bool = True, gridSample: float = 1.0, seed: int = 0,
                 track: bool = True, satisficing: dict | None = None, refine: int = 0,
                 refineEvals: int | None = None,
                 trialFraction: float = 1.0, refitParams: dict | None = None) -> None:
        super().__init__()
        self._set_from_kwargs(self._input_kwargs)

    def _check_engine(self) -> None:
        if len(self.metricList()) > 1:
            raise ValueError(f"`metric` == {self.metricList()!r}: HyperoptSearch optimizes one metric; use "
                             "OptunaSearch (sampler='nsga2' or 'tpe') for a multi-objective search")
        if self.getAlgo() == "grid":
            grid_points(self.getOrDefault(self.space))

    def _strategy(self) -> str:
        return self.getAlgo()

    def _tracked_params(self) -> dict:
        return {"algo": self.getAlgo()}

    def _new_model(self) -> HyperoptSearchModel:
        return HyperoptSearchModel()

    def _run_search(self, spark, setup: SearchSetup, progress: Progress) -> SearchOutcome:
        from hyperopt import anneal, hp, rand, tpe

        objective = _hyperopt_objective(make_objective(setup.base_values, setup.plan, setup.metric, setup.mode,
                                                       setup.metric_epoch), setup.mode)
        if self.getAlgo() == "grid":
            sample = None if self.getGridSample() >= 1 else self.getGridSample()
            points = grid_points(setup.space, sample, setup.seed)
            max_evals = min(setup.max_evals, len(points))
            hyperopt_space = {"grid": hp.choice("grid_index", points)}
            algo = _grid_suggest(len(points))
            fn = _unwrap_grid(objective)
        else:
            max_evals = setup.max_evals
            hyperopt_space = to_hyperopt(setup.space)
            algo = {"tpe": functools.partial(tpe.suggest, n_startup_jobs=tpe_startup_trials(max_evals)),
                    "random": rand.suggest, "anneal": anneal.suggest}[self.getAlgo()]
            fn = objective
        progress.total = max_evals
        trials = self._run_trials(spark, fn, hyperopt_space, algo, max_evals, setup.timeout,
                                  _HyperoptProgress(progress))
        return SearchOutcome(tuple(all_results(trials)))

    def _run_trials(self, spark, fn, hyperopt_space, algo, max_evals: int, timeout: float | None, progress):
        """Runs the trials with a job tag of their own; returns the hyperopt Trials, failed trials included.

        ``parallelism > 1`` or a timeout: one Spark job per trial (:func:`run_spark_trials`), which
        the timeout cancels; otherwise ``fmin`` in the driver.
        """
        from hyperopt import Trials, fmin
        from hyperopt.exceptions import AllTrialsFailed

        parallelism = self.getParallelism()
        in_tasks = trials_in_tasks(parallelism, timeout)
        # Our own tag lets us interrupt whatever is still running when the trials return: a
        # timeout, an error, Ctrl-C.
        with tagged_jobs(spark, f"{self.getAlgo()}-search-trials", interrupt=in_tasks) as tag:
            if in_tasks:
                trials = run_spark_trials(spark, fn, hyperopt_space, algo, max_evals, parallelism, timeout,
                                          self.getSeed(), progress, tag)
            else:
                trials = Trials()
                try:
                    # return_argmin=False: with it, a timeout before any trial finished raises a bare
                    # Exception; without it, the caller reports the unfinished trials.
                    fmin(fn, hyperopt_space, algo=algo, max_evals=max_evals, trials=trials, timeout=timeout,
                         rstate=np.random.default_rng(self.getSeed()), early_stop_fn=progress,
                         show_progressbar=False, return_argmin=False)
                except AllTrialsFailed:
                    pass  # reported by the caller with the first trial's error, which hyperopt does not show
            progress(trials)  # trials that finished after hyperopt's last call
        return trials


def _hyperopt_objective(objective, mode: str):
    """The objective as hyperopt calls it: a sample -> hyperopt's result dict."""

    def fn(sample):
        return result_to_hyperopt(objective(sample), mode)

    return fn


def _unwrap_grid(objective):
    def fn(sample):
        return objective(sample["grid"])

    return fn


class HyperoptSearchModel(BaseSearchModel, _SearchParams):
    """The search's result: ``bestModel`` (a KerasModel), ``bestParams`` and ``trials`` (pandas)."""


add_accessors(HyperoptSearch, SEARCH_PARAMS)
add_accessors(HyperoptSearchModel, SEARCH_PARAMS)
