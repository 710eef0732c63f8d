"""The Optuna engine, worker side: samplers, pruners, storage, the pruning callback, a worker's
trial loop, and a trial's :class:`~deepflash.tuning.trial.TrialResult` as the study keeps it (its
record in the trial's user attributes, its :class:`~deepflash.tuning.trial.TrialStatus` as a ``TrialState``).

Worker code: :func:`run_worker` runs in a Spark task (or in the driver when ``parallelism == 1``).
Every piece is rebuilt there from an :class:`EngineSettings` of plain data, so nothing that holds a
lock, a connection or a random state is pickled.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from deepflash.data.plan import FitPlan
from deepflash.networks.keras_backends import foreign
from deepflash.requirements import TORCH, MissingDependencyError
from deepflash.tuning.objective import run_trial, values_for_table
from deepflash.tuning.optuna.space import optuna_grid, suggest
from deepflash.tuning.space import plain, to_params
from deepflash.tuning.trial import TrialResult, TrialStatus

log = logging.getLogger("deepflash")
SAMPLERS = ("tpe", "random", "gp", "cmaes", "grid", "nsga2")
# Samplers that model several objectives at once (a metric list).
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "gp", "grid", "nsga2")
PRUNERS = ("none", "median", "asha", "hyperband")
RESULT_ATTR = "deepflash.result"   # the trial's TrialResult.record(), kept on the Optuna trial


class TrialFailed(Exception):
    """A trial's training failed; its result (error and traceback) is on the trial's user attrs."""


def trial_status(state: Any) -> TrialStatus | None:
    """The status of a finished Optuna ``TrialState``; None while the trial runs or waits."""
    from optuna.trial import TrialState

    return {TrialState.COMPLETE: TrialStatus.OK, TrialState.PRUNED: TrialStatus.PRUNED,
            TrialState.FAIL: TrialStatus.FAILED}.get(state)


def trial_state(status: TrialStatus):
    """The Optuna ``TrialState`` a trial of ``status`` ends in."""
    from optuna.trial import TrialState

    return {TrialStatus.OK: TrialState.COMPLETE, TrialStatus.PRUNED: TrialState.PRUNED,
            TrialStatus.FAILED: TrialState.FAIL}[status]


def trial_result(trial: Any) -> TrialResult | None:
    """A finished Optuna trial's numbered result, with the status the study gave it (a trial
    cancelled at a timeout or lost with its task ends FAILED); None while it runs."""
    status = trial_status(trial.state)
    if status is None:
        return None
    record = trial.user_attrs.get(RESULT_ATTR)
    result = TrialResult.from_record(record) if record else TrialResult(status)
    if status is TrialStatus.FAILED and not result.error:
        result = replace(result, error="cancelled or not finished (timeout, or its Spark task was lost)")
    return replace(result, status=status, number=trial.number)


def check_sampler(sampler: str) -> None:
    """Raises ImportError, saying what to install, when a sampler's extra dependency is missing."""
    if sampler == "gp" and not TORCH.installed():
        raise MissingDependencyError(f"{TORCH.message()}; a CPU build: pip install torch --index-url "
                                     "https://download.pytorch.org/whl/cpu. Or choose sampler='tpe'")


@dataclass(frozen=True)
class EngineSettings:
    """What a worker needs to load the study and run its trials.

    Args:
        storage: an RDB URL (``sqlite:///...``, ``postgresql://...``), ``journal:<local path>`` for
            a JournalFileBackend, or None for the driver's in-memory study.
        deadline: wall-clock time (``time.time()``) after which no trial starts; None = no limit.
        startup_trials: trials before the sampler models and the pruner prunes.
        max_epochs: the trials' epoch budget (Hyperband's max resource).
        objectives: ``(metric, mode)`` pairs; more than one is a multi-objective study (no pruning).
    """

    study_name: str
    storage: str | None
    sampler: str
    pruner: str
    seed: int
    space: dict
    base_values: dict
    plan: FitPlan
    metric: str
    mode: str
    metric_epoch: str
    deadline: float | None
    startup_trials: int
    max_epochs: int
    objectives: tuple[tuple[str, str], ...] = ()

    @property
    def directions(self) -> list[str]:
        pairs = self.objectives or ((self.metric, self.mode),)
        return ["maximize" if mode == "max" else "minimize" for _, mode in pairs]


def make_storage(storage: str | None):
    """The Optuna storage a settings string names (see :class:`EngineSettings`)."""
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = storage[len("journal:"):]
        # The open(O_EXCL) lock also works on NFS-like shared mounts, where symlink locks may not.
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    return optuna.storages.RDBStorage(storage)


def make_sampler(settings: EngineSettings, worker: int = 0):
    """The sampler; each worker seeds its own, so that parallel workers do not draw the same points."""
    import optuna

    seed = settings.seed + worker
    name = settings.sampler
    check_sampler(name)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=settings.startup_trials)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=settings.startup_trials,
                                            independent_sampler=optuna.samplers.RandomSampler(seed=seed))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, settings.startup_trials * 2)))
    return optuna.samplers.GridSampler(optuna_grid(settings.space), seed=settings.seed)


def make_pruner(settings: EngineSettings):
    """The pruner; ``median`` waits for ``startup_trials`` finished trials and one epoch of each."""
    import optuna

    name = settings.pruner
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=1)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, settings.max_epochs))


def pruning_callback(trial: Any, metric: str):
    """A Keras callback that reports ``metric`` to ``trial`` after every epoch and stops training
    when the pruner says so; ``pruned_after`` is then the epoch count (0 while not pruned)."""
    import tensorflow as tf

    class _Pruning(tf.keras.callbacks.Callback):
        pruned_after = 0

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            value = (logs or {}).get(metric)
            if value is None:
                return
            trial.report(float(value), epoch)
            if trial.should_prune():
                self.pruned_after = epoch + 1
                self.model.stop_training = True

    return _Pruning()


def objective(settings: EngineSettings):
    """The Optuna objective: suggest, train with the pruning callback, return the metric.

    Every outcome leaves the trial's :meth:`TrialResult.record` on the trial (``RESULT_ATTR``): a
    failure raises :class:`TrialFailed`, a pruned trial ``optuna.TrialPruned``.
    """
    import optuna

    def fn(trial) -> float | tuple[float, ...]:
        try:
            sample = suggest(trial, settings.space)
            values = {**settings.base_values, **to_params(sample, settings.base_values["layers"])}
        except Exception as e:
            result = TrialResult.failure(e, 0.0, {})
        else:
            # A trial cancelled at a timeout never returns: its params must be in the storage beforehand.
            params, drawn = values_for_table(values), plain(sample)
            trial.set_user_attr(RESULT_ATTR, TrialResult(TrialStatus.FAILED, params=params, sample=drawn).record())
            # Optuna prunes single-objective studies only; a multi-objective one trains every trial fully.
            # A trial on another Keras framework than this process's trains in a child process, which
            # cannot report (OptunaSearch refuses a pruner for it before the search starts).
            in_child = foreign(values.get("kerasBackend"))
            callback = pruning_callback(trial, settings.metric) if len(settings.directions) == 1 and not in_child \
                else None
            result = run_trial(values, settings.plan, settings.metric, settings.mode, settings.metric_epoch,
                               callbacks=[callback] if callback else [], objectives=settings.objectives)
            result = replace(result, params=params, sample=drawn)
            if result.ok and callback is not None and callback.pruned_after:
                result = replace(result, status=TrialStatus.PRUNED)
        trial.set_user_attr(RESULT_ATTR, result.record())
        if result.status is TrialStatus.PRUNED:
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs}")
        if not result.ok:
            raise TrialFailed(result.error)
        if result.objectives:
            return tuple(result.objectives[m] for m, _ in settings.objectives)
        return result.metric

    return fn


def load_study(settings: EngineSettings, storage=None, worker: int = 0, neutral: bool = False):
    """The shared study; ``neutral`` gives it a random sampler, for closing trials from the driver
    (a GridSampler's ``after_trial`` stops the study, which Optuna allows only inside ``optimize``)."""
    import optuna

    sampler = optuna.samplers.RandomSampler() if neutral else make_sampler(settings, worker)
    return optuna.load_study(study_name=settings.study_name, storage=storage or make_storage(settings.storage),
                             sampler=sampler, pruner=make_pruner(settings))


def create_study(settings: EngineSettings, storage=None):
    import optuna

    return optuna.create_study(study_name=settings.study_name, storage=storage or make_storage(settings.storage),
                               sampler=make_sampler(settings), pruner=make_pruner(settings),
                               directions=settings.directions)


def run_worker(settings: EngineSettings, worker: int, n_trials: int, study=None, callbacks=()) -> int:
    """Runs ``n_trials`` trials one after another (none after the deadline); returns how many ran."""
    import optuna

    if n_trials <= 0:
        return 0
    study = study or load_study(settings, worker=worker)
    remaining = None if settings.deadline is None else settings.deadline - time.time()
    if remaining is not None and remaining <= 0:
        return 0
    before = len(study.trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # deepflash logs one line per trial itself
    study.optimize(objective(settings), n_trials=n_trials, timeout=remaining, catch=(TrialFailed,),
                   callbacks=list(callbacks), gc_after_trial=True)
    return len(study.trials) - before


def spark_worker(settings: EngineSettings, shares: list[int]):
    """The function of one Spark task per worker (``run_tasks`` over the worker indexes): runs
    worker ``index``'s share of the trials; returns how many ran."""

    def run(index: int) -> int:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return run_worker(settings, index, shares[index])

    return run
