"""What a training process is given and what it gives back: :class:`TrainSettings` (built on the
driver by :func:`make_settings`) and :class:`TrainResult`; and how it reads its shard
(:func:`choose_read_mode`).

Every field that comes from an estimator Param is required: :func:`make_settings` fills it from
the Param values (``KerasEstimator.paramValues()``), so the defaults live in the Params alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from deepflash.backends.base import Communicator
from deepflash.backends.collective_stats import AllReduceStats
from deepflash.data.plan import FitPlan
from deepflash.networks.cascade_plan import CascadePlan, resolve_cascade
from deepflash.networks.schedules import LrSchedule, check_schedule
from deepflash.worker.devices import RankDevices

# Test-only fault injection (see deepflash.worker.progress.crash_hook): "rank=1,epoch=3,marker=/path".
CRASH_ENV = "DEEPFLASH_TEST_CRASH"


@dataclass(frozen=True)
class TrainSettings:
    """Everything one training process needs, built on the driver by :func:`make_settings`.

    ``communicator`` is the class (pickled by reference) that each process creates to share
    gradients and metrics: a backend's :meth:`~deepflash.backends.base.Backend.communicator`.
    """

    model_bytes: bytes
    communicator: type[Communicator]
    # from the estimator's Params
    optimizer: str
    learning_rate: float
    momentum: float
    nesterov: bool
    scale_lr: bool
    loss: str
    metrics: tuple
    batch_size: int
    epochs: int
    seed: int | None
    early_stopping_patience: int
    monitor: str
    reduce_lr_patience: int
    reduce_lr_factor: float
    lr_schedule: LrSchedule
    verbose: int
    read_mode: str
    shuffle_buffer_rows: int
    memory_budget_mb: float
    cascade: CascadePlan | None
    # from the fit's plan
    target_encoding: str
    num_classes: int
    train_url: str
    val_url: str
    train_rows: int
    val_rows: int
    store_url: str
    reader: str
    input_dim: int
    weighted: bool
    threads: int
    # from the caller
    checkpoint_path: str | None
    run_fingerprint: str
    run_id: str
    log_prefix: str
    # trainTimeout (seconds, None = no limit) and the wall-clock time it ends at, fixed on the
    # driver when the settings are made: a stage attempt that Spark retries keeps the fit's deadline.
    train_timeout: float | None
    deadline: float | None


@dataclass(frozen=True)
class TrainResult:
    """What one training process returns: its history, timings, and on rank 0 the weights."""

    rank: int
    history: dict
    initial_epoch: int
    read_seconds: float
    fit_seconds: float
    train_rows_read: int       # -1 when streamed (not counted)
    read_mode: str
    weights: list | None       # rank 0's final weights; None on the other ranks
    keras_backend: str = "tensorflow"   # the framework Keras ran on in this process
    epoch_seconds: tuple[float, ...] = ()   # each epoch this run trained: its steps' seconds
    allreduce: AllReduceStats | None = None   # the communicator's gradient all-reduces, where it times them
    devices: RankDevices | None = None  # the process's host, its task's GPUs, its CUDA_VISIBLE_DEVICES


def make_settings(values: dict, plan: FitPlan, model_bytes: bytes, *, run_fingerprint: str, run_id: str,
                  checkpoint_path: str | None, communicator: type[Communicator] = Communicator,
                  log_prefix: str = "") -> TrainSettings:
    """The :class:`TrainSettings` for :func:`deepflash.worker.loop.train`.

    Args:
        values: estimator Param values by name (``KerasEstimator.paramValues()``).
        plan: the fit's :class:`~deepflash.data.plan.FitPlan`.
        checkpoint_path: where rank 0 checkpoints every epoch and a later run with the same path
            resumes; None for no checkpoints.
        communicator: the backend's communicator class; the single-process one by default.
    """
    from deepflash.networks import resolve_loss

    keras_loss, target_encoding = resolve_loss(values["loss"], plan.output_kind)
    metrics = tuple(values["metrics"] or (["mae"] if plan.output_kind == "regression" else ["accuracy"]))
    # Search trials reach here without the estimator's validation: a schedule that cannot run fails the trial.
    lr_schedule = LrSchedule.from_values(values)
    check_schedule(lr_schedule, values["learningRate"])
    timeout = values.get("trainTimeout")
    return TrainSettings(
        model_bytes=model_bytes, communicator=communicator,
        optimizer=values["optimizer"], learning_rate=values["learningRate"], momentum=values["momentum"],
        nesterov=values["nesterov"], scale_lr=values["scaleLearningRate"], loss=keras_loss, metrics=metrics,
        batch_size=values["batchSize"], epochs=values["epochs"], seed=values["seed"],
        early_stopping_patience=values["earlyStoppingPatience"], monitor=values["earlyStoppingMonitor"],
        reduce_lr_patience=values["reduceLrPatience"], reduce_lr_factor=values["reduceLrFactor"],
        lr_schedule=lr_schedule, verbose=values["verbose"], read_mode=values["readMode"],
        shuffle_buffer_rows=int(values["shuffleBufferRows"]), memory_budget_mb=float(values["memoryBudgetMB"]),
        cascade=resolve_cascade(values),
        target_encoding=target_encoding, num_classes=plan.num_classes, train_url=plan.train_url,
        val_url=plan.val_url, train_rows=plan.train_rows, val_rows=plan.val_rows, store_url=plan.store_url,
        reader=plan.reader, input_dim=plan.input_dim, weighted=plan.weighted, threads=int(plan.threads or 0),
        checkpoint_path=checkpoint_path, run_fingerprint=run_fingerprint, run_id=run_id, log_prefix=log_prefix,
        train_timeout=timeout, deadline=None if timeout is None else time.time() + timeout)


def choose_read_mode(settings: TrainSettings, num_proc: int) -> str:
    """``memory`` or ``stream``: ``auto`` keeps a shard in memory when it fits the budget.

    An in-memory shard costs its float32 features, labels and weights, about twice over while the
    ``tf.data`` pipeline is built from them.
    """
    if settings.read_mode != "auto":
        return settings.read_mode
    columns = settings.input_dim + 1 + int(settings.weighted)
    shard_bytes = math.ceil(settings.train_rows / max(num_proc, 1)) * columns * 4 * 2
    return "memory" if shard_bytes <= settings.memory_budget_mb * 2 ** 20 else "stream"
