"""The training function that runs in every training process (driver or Spark executor).

Everything it needs arrives in one frozen :class:`~deepflash.worker.settings.TrainSettings` built
on the driver by :func:`~deepflash.worker.settings.make_settings`: model bytes, dataset URLs,
hyperparameters and the backend's communicator class. It imports TensorFlow and the reader, never
the estimator, so it pickles by reference and runs wherever ``deepflash`` is importable.

:func:`train` reads one way down: the settings make the communicator
(:mod:`deepflash.backends`), which fixes the devices; the checkpoint is read
(:mod:`deepflash.worker.checkpoint`), then this process's data (:mod:`deepflash.worker.inputs`)
and the model; each span of epochs compiles the network, builds its callbacks
(:mod:`deepflash.worker.callbacks`, :mod:`deepflash.worker.sync`, :mod:`deepflash.worker.progress`)
and fits, and rank 0 writes the checkpoint after every epoch.

Checkpoints and exact resume
    With a ``checkpoint_path`` (the estimator sets one only for a user-given ``runId``) rank 0
    writes, after every epoch and after the learning-rate and early-stopping callbacks have run,
    one file holding everything training continues from: weights, the optimizer's variables
    (iteration count and slots) and current learning rate, the learning-rate callback's state
    (plateau multiplier and counters) and the early-stopping state (counters, best value, best
    weights, whether it stopped) and the history. The schedule itself is a function of the epoch,
    so the resumed run continues it from the checkpoint's epoch.
    Every rank waits until that file is written before it starts the next epoch. A run started
    again with the same checkpoint continues after the checkpoint's epoch; one that had stopped
    early trains no more and returns its best weights. The training batches are a deterministic
    function of (seed, rank) and their position (see :func:`deepflash.data.pipeline.to_dataset`),
    and a resumed run starts the stream at batch ``initial_epoch * steps_per_epoch``, so on the
    same hardware a run of 4 epochs and a run of 2 epochs resumed for 2 more end with identical
    weights and history.
    In cascade mode the checkpoint also records the stage whose network it holds: a resumed run
    continues that stage (its network, optimizer and plateau state) or, when the stage had
    finished, carries its layers into the next one. Each stage reads the batch stream from its
    first epoch's position, so stage boundaries resume exactly as well.

Test-only fault injection
    ``DEEPFLASH_TEST_CRASH`` (:data:`~deepflash.worker.settings.CRASH_ENV`) makes one rank exit at
    the start of an epoch, once; see :mod:`deepflash.worker.progress`. It exists for the resume
    tests; never set it in real runs.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepflash.backends.base import Communicator
from deepflash.backends.local import LocalBackend
from deepflash.data.plan import FitPlan
from deepflash.io.keras_files import model_from_bytes
from deepflash.io.store import Store
from deepflash.networks.cascade_plan import CascadeStage
from deepflash.networks.keras_backends import running_backend
from deepflash.worker.checkpoint import FILE as CHECKPOINT_FILE
from deepflash.worker.checkpoint import FORMAT as CHECKPOINT_FORMAT
from deepflash.worker.checkpoint import Checkpoint
from deepflash.worker.devices import rank_devices
from deepflash.worker.inputs import TrainingData
from deepflash.worker.settings import CRASH_ENV, TrainResult, TrainSettings, make_settings

__all__ = ["CHECKPOINT_FILE", "CHECKPOINT_FORMAT", "CRASH_ENV", "TrainedNetwork", "TrainResult", "TrainSettings",
           "make_settings", "train", "train_network"]

log = logging.getLogger("deepflash")


def _ensure_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def train(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Trains one process's share and returns its history (and, on rank 0, the weights).

    In cascade mode (``settings.cascade``) it trains one stage network after the other (see
    :mod:`deepflash.networks.cascade_plan`), each with a fresh optimizer (wrapped by the
    communicator like the first) and learning-rate state, over the same batch stream; a
    checkpoint records the stage whose network it holds, and a resumed run continues within that
    stage or starts the next.

    Args:
        callbacks: extra Keras callbacks (e.g. a search's pruning callback); they run after the
            validation, learning-rate and early-stopping callbacks, so they see the epoch's val_ metrics.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _ensure_logging()
    comm = settings.communicator(threads=settings.threads)
    with comm.scope():
        import tensorflow as tf

        if settings.seed is not None:
            tf.keras.utils.set_random_seed(settings.seed)
        store = Store(settings.store_url)
        # Read first: a runId that holds another model's checkpoint fails before any data is read.
        checkpoint = _read_checkpoint(settings, store)
        data = TrainingData.load(settings, comm)
        model = model_from_bytes(settings.model_bytes)
        run = _Run(settings, comm, data, store, checkpoint, list(callbacks))
        fit_started = time.time()
        history = run.fit_cascade(model) if settings.cascade is not None else run.fit_standard(model)
        allreduce = comm.allreduce_stats()
        if allreduce is not None and allreduce.steps and comm.rank == 0:
            log.info("%sall-reduce: %s", settings.log_prefix, allreduce.describe())
        return TrainResult(rank=comm.rank, history=history, initial_epoch=run.initial_epoch,
                           read_seconds=data.read_seconds, fit_seconds=time.time() - fit_started,
                           read_mode=data.read_mode, train_rows_read=data.train_rows_read,
                           weights=model.get_weights() if comm.rank == 0 else None,
                           keras_backend=running_backend(), devices=rank_devices(),
                           epoch_seconds=tuple(run.epoch_seconds), allreduce=allreduce)


def _read_checkpoint(settings: TrainSettings, store: Store) -> Checkpoint | None:
    if not settings.checkpoint_path:
        return None
    checkpoint = Checkpoint.load(store, settings.checkpoint_path, settings.run_fingerprint)
    if checkpoint is not None and settings.cascade is not None and checkpoint.cascade_stage is None:
        raise ValueError(f"`runId` {settings.run_id!r} holds a checkpoint of standard training; a cascade fit "
                         "cannot continue it: use a new runId")
    return checkpoint


def _merge_history(before: dict, new: dict) -> dict:
    return {k: list(before.get(k, [])) + list(new.get(k, [])) for k in sorted(set(before) | set(new))}


@dataclass(frozen=True)
class _Span:
    """One ``fit`` call: ``net`` from epoch ``start`` to ``end`` (0-based, end exclusive) with a
    fresh optimizer whose schedule began at epoch ``first``, continuing ``restore`` when given;
    ``stage`` in cascade mode."""

    net: Any
    first: int
    start: int
    end: int
    restore: Checkpoint | None
    stage: CascadeStage | None = None


@dataclass
class _Decisions:
    """A span's compiled optimizer and its stateful callbacks (early stopping may be off)."""

    optimizer: Any
    learning_rate: Any
    early_stopping: Any | None


class _Run:
    """One process's training run: fits its spans of epochs, standard or cascade.

    ``history`` is the run's history so far (the checkpoint's, then each span's epochs added);
    a span's checkpoints record it with the span's own epochs after it.
    """

    def __init__(self, settings: TrainSettings, comm: Communicator, data: TrainingData, store: Store,
                 checkpoint: Checkpoint | None, extra_callbacks: list):
        self.settings, self.comm, self.data, self.store = settings, comm, data, store
        self.checkpoint, self.extra_callbacks = checkpoint, extra_callbacks
        # scaleLearningRate scales α0: every scheduled rate, and so the plateau-reduced ones, scale with it.
        self.base_rate = settings.learning_rate * (comm.size if settings.scale_lr else 1)
        self.initial_epoch, self.history, self.stopped = 0, {}, False
        self.epoch_seconds: list[float] = []   # the epochs this run trains, every span's
        if checkpoint is not None:
            self.initial_epoch, self.history, self.stopped = checkpoint.epoch, checkpoint.history, checkpoint.stopped
            self._log("%sresuming run %s from its checkpoint after epoch %d%s", settings.log_prefix, settings.run_id,
                      self.initial_epoch, " (it had stopped early: nothing left to train)" if self.stopped else "")

    def _log(self, *args) -> None:
        if self.comm.rank == 0:
            log.info(*args)

    # --- the two modes ---------------------------------------------------------------------

    def fit_standard(self, model) -> dict:
        """Trains ``model`` to ``epochs``; returns the history of the whole run."""
        settings, checkpoint = self.settings, self.checkpoint
        if self.initial_epoch < settings.epochs and not self.stopped:
            self.fit(_Span(model, 0, self.initial_epoch, settings.epochs, checkpoint))
        elif checkpoint is not None:
            # Nothing left to train: end as the finished run did, on its best weights under early stopping.
            model.set_weights(checkpoint.weights)
            best = (checkpoint.early_stopping_state or {}).get("best_weights")
            if settings.early_stopping_patience > 0 and best is not None:
                model.set_weights(best)
        return self.history

    def fit_cascade(self, model) -> dict:
        """Trains the stage networks of ``model`` one after the other; returns the history of the whole run."""
        from deepflash.networks.cascade import reset_trainable, stage_model

        cascade, checkpoint, seed = self.settings.cascade, self.checkpoint, self.settings.seed
        if checkpoint is not None:
            done = cascade.stages[checkpoint.cascade_stage]
            if self.initial_epoch >= done.end:
                # The checkpoint's stage had finished: its layers carry over into the next stage.
                stage_model(model, cascade, done, seed).set_weights(checkpoint.weights)
        for stage in cascade.stages:
            if stage.end <= self.initial_epoch:
                continue
            net = stage_model(model, cascade, stage, seed)
            start = max(stage.start, self.initial_epoch)
            # Resuming within a stage: its network, optimizer and learning-rate state come back.
            restore = checkpoint if checkpoint is not None and start > stage.start else None
            self._log("%scascade stage %d/%d: hidden layers 1-%d, epochs %d-%d%s", self.settings.log_prefix,
                      stage.index + 1, len(cascade.blocks), stage.layers, start + 1, stage.end,
                      "" if not stage.index else " (earlier layers frozen)" if cascade.fine_tune_rate == 0
                      else f" (earlier layers at {cascade.fine_tune_rate:g} x the rate)")
            self.fit(_Span(net, stage.start, start, stage.end, restore, stage))
        reset_trainable(model)
        return self.history

    # --- one span: compile, callbacks, fit ---------------------------------------------------

    def fit(self, span: _Span) -> None:
        """Trains one span and adds its epochs to :attr:`history`."""
        decisions = self.compile(span)
        dataset = self.data.train_dataset(span.start)
        callbacks = self.callbacks(span, decisions)
        verbose = 2 if self.settings.verbose >= 2 and self.comm.rank == 0 else 0
        result = span.net.fit(dataset, steps_per_epoch=self.data.steps, epochs=span.end, initial_epoch=span.start,
                              callbacks=callbacks, verbose=verbose)
        self.history = _merge_history(self.history, {k: [float(v) for v in vs] for k, vs in result.history.items()})

    def compile(self, span: _Span) -> _Decisions:
        """Compiles the span's network with a fresh optimizer and makes its learning-rate and
        early-stopping callbacks, all continuing ``span.restore`` when given."""
        from deepflash.networks import make_optimizer
        from deepflash.worker.callbacks import RestoreBestEarlyStopping, ScheduledLearningRate, restore_training_state

        settings, comm = self.settings, self.comm
        optimizer = comm.wrap_optimizer(make_optimizer(settings.optimizer, self.base_rate, settings.momentum,
                                                       settings.nesterov))
        # With weights the batches carry a sample_weight: it scales the loss, training's and
        # validation's; the metrics stay unweighted (an empty weighted_metrics says so to Keras).
        span.net.compile(optimizer=optimizer, loss=settings.loss, metrics=settings.metrics, weighted_metrics=[])
        comm.prepare_model(span.net)
        schedule = settings.lr_schedule
        if span.stage is not None:
            # The schedule restarts in every stage and runs over that stage's epochs.
            schedule = dataclasses.replace(schedule, epochs=span.stage.epochs)
        # Always present: it sets every epoch's rate and records it as `lr` in the history.
        learning_rate = ScheduledLearningRate(schedule, self.base_rate, monitor=settings.monitor,
                                              patience=settings.reduce_lr_patience, factor=settings.reduce_lr_factor,
                                              first_epoch=span.first)
        early_stopping = None
        if settings.early_stopping_patience > 0:
            early_stopping = RestoreBestEarlyStopping(monitor=settings.monitor,
                                                      patience=settings.early_stopping_patience)
        restore = span.restore
        if restore is not None:
            restore_training_state(span.net, optimizer, restore)
            learning_rate.set_state(restore.learning_rate_callback_state(settings.learning_rate, settings.scale_lr,
                                                                         comm.size))
            if early_stopping is not None and restore.early_stopping_state is not None:
                early_stopping.set_state(restore.early_stopping_state)
        return _Decisions(optimizer, learning_rate, early_stopping)

    def callbacks(self, span: _Span, decisions: _Decisions) -> list:
        """The span's callbacks, in the order they must run: the epoch timer, the communicator's,
        validation, the decisions, the non-finite and deadline checks, the caller's, the stage,
        the checkpoint, the crash hook, the log line."""
        from deepflash.worker.callbacks import StopAtDeadline, StopOnNonFiniteLoss
        from deepflash.worker.progress import CheckpointCallback, EpochLogger, EpochTimes, StageLog, crash_hook
        from deepflash.worker.sync import ShardedValidation

        settings, comm, data = self.settings, self.comm, self.data
        callbacks = comm.callbacks()
        if data.validation is not None:
            # First: the LR and early-stopping callbacks read the val_ metrics it puts in the epoch's logs.
            callbacks.insert(0, ShardedValidation(data.validation, data.validation_rows, comm.sum,
                                                  steps=data.validation_steps, global_metrics=comm.global_evaluate,
                                                  evaluate=comm.evaluate))
        # Before everything: an epoch's time is its steps', without the validation and checkpoint.
        callbacks.insert(0, EpochTimes(self.epoch_seconds))
        callbacks += [cb for cb in (decisions.learning_rate, decisions.early_stopping) if cb is not None]
        # After early stopping (it checks the weights that one restores), before the checkpoint.
        callbacks.append(StopOnNonFiniteLoss(settings.learning_rate))
        if settings.deadline is not None:
            callbacks.append(StopAtDeadline(settings.deadline, settings.train_timeout))
        callbacks += self.extra_callbacks
        if span.stage is not None:
            callbacks.append(StageLog(span.stage.index + 1))
        # The checkpoint callback comes after the LR and early-stopping callbacks: it records the state they leave.
        if settings.checkpoint_path:
            save = None
            if comm.rank == 0:
                def save(epoch: int, so_far: dict) -> None:
                    self.snapshot(span, decisions, epoch, so_far).save(self.store, settings.checkpoint_path)
            callbacks.append(CheckpointCallback(save, self.history, barrier=comm.barrier if comm.size > 1 else None))
        hook = crash_hook(comm.rank)
        if hook is not None:
            callbacks.append(hook)
        if comm.rank == 0:
            where = "" if span.stage is None else f"stage {span.stage.index + 1}/{len(settings.cascade.blocks)} "
            callbacks.append(EpochLogger(settings.epochs, settings.log_prefix + where))
        return callbacks

    def snapshot(self, span: _Span, decisions: _Decisions, epoch: int, history: dict) -> Checkpoint:
        """The checkpoint after ``epoch`` epochs (``history`` so far) of ``span``."""
        from deepflash.worker.callbacks import get_learning_rate, optimizer_values

        settings, early_stopping = self.settings, decisions.early_stopping
        return Checkpoint(
            epoch=epoch, history={k: list(v) for k, v in history.items()}, fingerprint=settings.run_fingerprint,
            run_id=settings.run_id, weights=[np.asarray(w) for w in span.net.get_weights()],
            optimizer=optimizer_values(decisions.optimizer), learning_rate=get_learning_rate(decisions.optimizer),
            learning_rate_state=decisions.learning_rate.get_state(),
            early_stopping_state=None if early_stopping is None else early_stopping.get_state(),
            stopped=early_stopping is not None and early_stopping.stopped, num_proc=self.comm.size,
            cascade_stage=None if span.stage is None else span.stage.index)


@dataclass(frozen=True)
class TrainedNetwork:
    """A network trained in this process by :func:`train_network`."""

    model: Any
    history: dict
    fit_seconds: float


def train_network(values: dict, plan: FitPlan, log_prefix: str = "",
                  callbacks: Sequence[Any] = ()) -> TrainedNetwork:
    """Builds the network that ``values`` describe and trains it in this process, no checkpoints.

    The one single-process entry point for search trials and study runs (the base
    :class:`~deepflash.backends.base.Communicator`): ``values`` are an estimator's
    :meth:`~deepflash.KerasEstimator.paramValues` with the trial's overrides; ``callbacks`` are
    extra Keras callbacks for :func:`train`.
    """
    import uuid

    from deepflash.io.keras_files import model_to_bytes
    from deepflash.networks import build_model

    model = build_model(values["layers"], plan.input_dim, plan.output_kind, plan.num_classes, seed=values["seed"],
                        input_shape=values["inputShape"] or plan.input_shape, augmentation=values["augmentation"],
                        kernel_initializer=values["kernelInitializer"])
    settings = make_settings(values, plan, model_to_bytes(model), run_fingerprint="", run_id=uuid.uuid4().hex,
                             checkpoint_path=None, communicator=Communicator, log_prefix=log_prefix)
    # Keras runs on one framework per process: another one trains in a child process (LocalBackend).
    backend = LocalBackend(1, values["workerTimeout"], values.get("kerasBackend"))
    if callbacks and backend.in_child():
        raise ValueError(f"`kerasBackend` == {backend.keras_backend!r}, but this process runs Keras on "
                         f"{running_backend()!r}, so the network trains in a child process, which cannot report to "
                         "a pruner: set kerasBackend to the executors' backend (spark.executorEnv.KERAS_BACKEND), or "
                         "turn pruning off")
    result = backend.run(None, train, (settings, callbacks))[0]
    model.set_weights(result.weights)
    return TrainedNetwork(model=model, history=result.history, fit_seconds=result.fit_seconds)
