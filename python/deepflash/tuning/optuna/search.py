"""OptunaSearch: Optuna samplers (TPE, random, GP, CMA-ES, grid) and pruners over KerasEstimator Params.

The same dict space, trial function, trials table, MLflow runs and result model as HyperoptSearch
(see ``deepflash.tuning.base``); only the engine differs. ``parallelism == 1`` without a ``timeout`` runs the
trials in the driver on an in-memory study. ``parallelism > 1``, or a ``timeout``, runs one Spark task per parallel
worker (which the timeout cancels); the workers share one
study through a storage that the driver and every executor reach: a JournalFileBackend file in the
estimator's store when that is a ``file:`` path (a POSIX path, shared by all nodes on a cluster),
or the ``storage`` Param (``sqlite:///...``, ``postgresql://...``).
"""
from __future__ import annotations

import logging
import math
import os
import time
import uuid
from dataclasses import replace
from typing import Any

from pyspark import keyword_only
from pyspark.ml.param import Param, Params

from deepflash.ml.converters import add_accessors, to_choice
from deepflash.spark.tags import tagged_jobs
from deepflash.spark.tasks import run_tasks
from deepflash.tuning.base import (
    BaseSearch,
    BaseSearchModel,
    SearchOutcome,
    SearchSetup,
    tpe_startup_trials,
    trials_in_tasks,
)
from deepflash.tuning.optuna.engine import (
    MULTI_OBJECTIVE_SAMPLERS,
    PRUNERS,
    SAMPLERS,
    EngineSettings,
    check_sampler,
    create_study,
    load_study,
    make_storage,
    run_worker,
    spark_worker,
    trial_result,
    trial_state,
)
from deepflash.tuning.optuna.space import check_optuna_space, optuna_grid
from deepflash.tuning.params import COMMON_PARAMS, CommonSearchParams
from deepflash.tuning.progress import Progress
from deepflash.tuning.trial import CANCELLED, NOT_FINISHED, TrialResult, TrialStatus

log = logging.getLogger("deepflash")
POLL_SECONDS = 2.0
__all__ = ["OptunaSearch", "OptunaSearchModel"]


def _storage(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ("://" in value or value.startswith("journal:")):
        raise ValueError(f"`storage` == {value!r}, must be an RDB URL (sqlite:///path, postgresql://...) or "
                         "journal:<POSIX path> reachable from the driver and every executor")
    return value


class _OptunaParams(CommonSearchParams):
    sampler = Param(Params._dummy(), "sampler", "tpe, random, gp (needs PyTorch), cmaes, grid or nsga2",
                    to_choice("sampler", SAMPLERS))
    pruner = Param(Params._dummy(), "pruner", "none, median, asha or hyperband: stops weak trials after an epoch",
                   to_choice("pruner", PRUNERS))
    storage = Param(Params._dummy(), "storage", "Optuna storage shared by parallel trials: an RDB URL or "
                    "journal:<path>; None = a journal file in the estimator's file: store", _storage)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(sampler="tpe", pruner="none")


OPTUNA_PARAMS = COMMON_PARAMS + ["sampler", "pruner", "storage"]


class OptunaSearch(BaseSearch, _OptunaParams):
    """Searches KerasEstimator Params with Optuna, trials spread over the cluster as Spark tasks.

    Args:
        estimator: the KerasEstimator whose Params are searched; its other Params stay fixed.
        space: the dict space HyperoptSearch takes (``deepflash.tuning.space``).
        sampler: tpe, random, gp (Gaussian process; needs PyTorch), cmaes, grid (``choice``
            dimensions only), or nsga2 (NSGA-II, for a metric list).
        metric, mode: one metric, or a list of them with a list of modes: a multi-objective search
            (samplers tpe, random, gp, grid, nsga2; no pruning). Its ``trials`` flag the Pareto front
            (``pareto``), and ``satisficing`` picks the best model among them, e.g.
            ``metric=["val_accuracy", "latency_ms"], mode=["max", "min"], satisficing={"latency_ms": "<= 5"}``.
        pruner: none, median, asha (successive halving) or hyperband; a trial reports ``metric``
            after every epoch, and a pruned one is stopped and marked ``pruned`` in ``trials``.
        storage: where parallel workers share the study (see the module docstring).
        refine, trialFraction, refitParams: as in :class:`~deepflash.tuning.hyperopt.search.HyperoptSearch`
            (a second stage around the top k trials; cheaper trials on a fraction of the rows; Params
            the refit sets over the best trial's).

    Example:
        >>> search = OptunaSearch(estimator=est, space={"learningRate": {"loguniform": [1e-4, 1e-1]}},
        ...                       sampler="tpe", pruner="median", maxEvals=30, parallelism=4,
        ...                       metric="val_accuracy", mode="max")
        >>> found = search.fit(train_df)
        >>> found.bestParams, found.trials, found.transform(test_df)
    """

    _engine = "optuna"

    @keyword_only
    def __init__(self, *, estimator=None, space: dict | None = None, sampler: str = "tpe", pruner: str = "none",
                 maxEvals: int = 20, parallelism: int = 1, metric: str | list[str] = "val_loss",
                 mode: str | list[str] = "min", metricEpoch: str = "best", timeout: float | None = None,
                 refit: bool = True, storage: str | None = None, seed: int = 0, track: bool = True,
                 satisficing: dict | None = None, refine: int = 0, refineEvals: int | None = None,
                 trialFraction: float = 1.0, refitParams: dict | None = None) -> None:
        super().__init__()
        self._set_from_kwargs(self._input_kwargs)

    def _check_engine(self) -> None:
        from deepflash.io import fs

        space = check_optuna_space(self.getOrDefault(self.space))
        check_sampler(self.getSampler())
        if len(self.metricList()) > 1:
            if self.getSampler() not in MULTI_OBJECTIVE_SAMPLERS:
                raise ValueError(f"`sampler` == {self.getSampler()!r} optimizes one metric; `metric` == "
                                 f"{self.metricList()!r} needs one of: {', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
            if self.getPruner() != "none":
                raise ValueError(f"`pruner` == {self.getPruner()!r}: Optuna prunes single-objective searches only; "
                                 f"use pruner='none' with `metric` == {self.metricList()!r}")
        if self.getPruner() != "none":
            self._check_pruned_framework(space)
        if self.getSampler() == "grid":
            optuna_grid(space)
        store = self.estimator.getOrDefault("storePath") if self.estimator.isDefined("storePath") else None
        timeout = self.timeoutSeconds()
        if trials_in_tasks(self.getParallelism(), timeout) and self._user_storage() is None and store and \
                not fs.is_local(fs.qualify(store)):
            raise ValueError(f"{_tasks_reason(self.getParallelism(), timeout)} shares one Optuna study between Spark "
                             f"tasks; the store {store!r} is not a file: path that a journal file can lock, so set "
                             "`storage` to an RDB URL, e.g. postgresql://user@host/db")

    def _check_pruned_framework(self, space: dict) -> None:
        """A trial on another Keras framework than its executor's trains in a child process, which
        cannot report to the pruner: refused before any job."""
        from deepflash.networks.keras_backends import foreign, running_backend

        here, fixed = running_backend(), self.estimator.kerasBackendValue()
        if "kerasBackend" in space or foreign(fixed):
            found = "searched over" if "kerasBackend" in space else f"{fixed!r}"
            raise ValueError(f"`pruner` == {self.getPruner()!r}, but `kerasBackend` is {found}: a trial on another "
                             f"framework than the executors' ({here!r}) trains in a child process, which cannot report "
                             "to the pruner; use pruner='none', or keep kerasBackend at the executors' framework")

    def _user_storage(self) -> str | None:
        return self.getOrDefault(self.storage) if self.isDefined(self.storage) else None

    def _strategy(self) -> str:
        return f"optuna-{self.getSampler()}"

    def _tracked_params(self) -> dict:
        return {"sampler": self.getSampler(), "pruner": self.getPruner()}

    def _new_model(self) -> OptunaSearchModel:
        return OptunaSearchModel()

    def _storage_for(self, setup: SearchSetup, study_name: str) -> str | None:
        """The user's storage, else in-memory for one worker, else a journal file in the store."""
        from deepflash.io import fs

        if self._user_storage() is not None or not setup.in_tasks:
            return self._user_storage()
        store = setup.plan.store_url
        if not fs.is_local(store):
            raise ValueError(f"{_tasks_reason(setup.parallelism, setup.timeout)} needs an Optuna storage that every "
                             f"executor reaches; the store {store!r} is not a file: path, so set `storage` to an RDB "
                             "URL")
        directory = fs.local_path(fs.join(store, "optuna"))
        os.makedirs(directory, exist_ok=True)
        return f"journal:{os.path.join(directory, study_name + '.log')}"

    def _run_search(self, spark, setup: SearchSetup, progress: Progress) -> SearchOutcome:
        max_evals = setup.max_evals
        if self.getSampler() == "grid":
            max_evals = min(max_evals, math.prod(len(v) for v in optuna_grid(setup.space).values()))
        progress.total = max_evals
        study_name = f"deepflash-{uuid.uuid4().hex[:12]}"
        settings = EngineSettings(
            study_name=study_name, storage=self._storage_for(setup, study_name), sampler=self.getSampler(),
            pruner=self.getPruner(), seed=setup.seed, space=setup.space, base_values=setup.base_values,
            plan=setup.plan, metric=setup.metric, mode=setup.mode, metric_epoch=setup.metric_epoch,
            deadline=None if setup.timeout is None else time.time() + setup.timeout,
            startup_trials=tpe_startup_trials(max_evals), max_epochs=int(setup.base_values["epochs"]),
            objectives=setup.objectives if setup.multi_objective else ())
        cancelled: list[int] = []
        if not setup.in_tasks:
            study = create_study(settings, make_storage(settings.storage))
            run_worker(settings, 0, max_evals, study=study,
                       callbacks=[lambda _, trial: _report(progress, trial)])
        else:
            create_study(settings)
            self._run_workers(spark, settings, max_evals, setup.parallelism, progress)
            closed = _close_unfinished(load_study(settings, neutral=True))
            if settings.deadline is not None and time.time() >= settings.deadline:
                cancelled = closed  # running when the timeout came: interrupted
            study = load_study(settings)
        trials = study.get_trials(deepcopy=False)
        outcome = _outcome(trials, cancelled)
        for result in outcome.trials:
            progress.report(result)
        return outcome

    def _run_workers(self, spark, settings: EngineSettings, max_evals: int, parallelism: int,
                     progress: Progress) -> None:
        """One Spark task per worker (one job), each running its share of the trials against the
        shared study. Reports trials as they finish; at the deadline, interrupts the tasks still running."""
        shares = [max_evals // parallelism + (1 if i < max_evals % parallelism else 0) for i in range(parallelism)]
        errors: list[BaseException] = []

        def collect() -> None:
            try:  # the workers write their trials to the shared storage: their answers are not needed
                run_tasks(spark, spark_worker(settings, shares), range(parallelism))
            except BaseException as e:  # a lost task or the interruption at the deadline
                errors.append(e)

        with tagged_jobs(spark, f"optuna-{self.getSampler()}-trials", interrupt=True) as tag:
            thread = tag.thread(collect)
            study = load_study(settings)
            while thread.is_alive():
                thread.join(POLL_SECONDS)
                for trial in study.get_trials(deepcopy=False):
                    _report(progress, trial)
                if settings.deadline is not None and time.time() > settings.deadline:
                    log.info("search: timeout reached, interrupting the trials still running")
                    break
        thread.join()
        if errors and (settings.deadline is None or time.time() <= settings.deadline):
            log.warning("search: a trial task failed (%s); its unfinished trials are recorded as failed", errors[0])


def _report(progress: Progress, trial) -> None:
    result = trial_result(trial)
    if result is not None:
        progress.report(result)


def _tasks_reason(parallelism: int, timeout: float | None) -> str:
    """Which Param makes the trials run as Spark tasks, for an error message."""
    if parallelism > 1:
        return f"`parallelism` == {parallelism}"
    return f"`timeout` == {timeout:g} (the trials run as Spark tasks, so that the timeout can cancel them)"


def _close_unfinished(study) -> list[int]:
    """Marks the trials that a cancelled or lost task left running as failed, in the storage too;
    returns their numbers."""
    from optuna.trial import TrialState

    closed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        closed.append(trial.number)
        try:
            study.tell(trial.number, state=trial_state(TrialStatus.FAILED), skip_if_finished=True)
        except Exception as e:  # the table still says failed
            log.warning("could not close trial %d in the Optuna storage: %s", trial.number, e)
    return closed


def _outcome(trials, cancelled: list[int] = ()) -> SearchOutcome:
    """Every trial of the study as a numbered TrialResult; one still open counts as failed, and
    those in ``cancelled`` (running at the timeout) say so."""
    results = []
    for t in sorted(trials, key=lambda t: t.number):
        result = trial_result(t) or TrialResult(TrialStatus.FAILED, number=t.number, error=NOT_FINISHED)
        if t.number in cancelled:
            result = replace(result, status=TrialStatus.FAILED, error=CANCELLED, traceback=None, cancelled=True)
        results.append(result)
    return SearchOutcome(tuple(results))


class OptunaSearchModel(BaseSearchModel, _OptunaParams):
    """The search's result: ``bestModel`` (a KerasModel), ``bestParams`` and ``trials`` (pandas, with
    ``status`` ok, failed or pruned)."""


add_accessors(OptunaSearch, OPTUNA_PARAMS)
add_accessors(OptunaSearchModel, OPTUNA_PARAMS)
