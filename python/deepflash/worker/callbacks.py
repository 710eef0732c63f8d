"""Keras callbacks used by the training processes: checkpoints, progress, early stopping, the learning rate.

The two stateful callbacks (:class:`ScheduledLearningRate`, :class:`RestoreBestEarlyStopping`)
expose ``get_state()`` / ``set_state()``: the checkpoint stores what they return and a resumed run
hands it back, so a run continued from a checkpoint takes exactly the decisions the uninterrupted
run would have taken.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from deepflash.networks.keras_compat import is_legacy_optimizer, to_float
from deepflash.networks.schedules import LrSchedule

log = logging.getLogger("deepflash")


def _scalar_state(value) -> dict:
    """A number with its NumPy type, so that a restored value compares and rounds as the original did
    (under Horovod the averaged metrics are float32, a local run's are Python floats)."""
    if value is None:  # Keras 3 callbacks start with no best value
        return {"value": None, "dtype": None}
    return {"value": float(value), "dtype": np.asarray(value).dtype.name}


def _scalar_value(state: dict):
    return None if state["value"] is None else np.dtype(state["dtype"]).type(state["value"])


class _PendingState:
    """Keras callbacks reset their state in ``on_train_begin``; a state given to ``set_state``
    before ``fit`` is applied right after that reset."""

    _pending: dict | None = None

    def set_state(self, state: dict | None) -> None:
        """Continues from ``state`` (from :meth:`get_state`) when the next ``fit`` begins."""
        self._pending = dict(state) if state else None

    def _apply_pending(self) -> None:
        if self._pending is not None:
            self._apply_state(self._pending)
            self._pending = None

    def _apply_state(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ScheduledLearningRate(_PendingState, tf.keras.callbacks.ReduceLROnPlateau):
    """Owns the learning rate: each epoch trains at ``schedule.rate(epoch, base_rate) * multiplier``.

    The schedule is a pure function of the epoch (:class:`deepflash.networks.schedules.LrSchedule`); the
    multiplier starts at 1 and is multiplied by ``factor`` whenever ``monitor`` has not improved
    for ``patience`` epochs (Keras's ReduceLROnPlateau rules: ``min_delta`` 1e-4, mode from the
    metric's name). So a plateau reduction scales the scheduled rate instead of replacing it, and
    the schedule goes on from the reduced level. ``patience`` 0 turns the plateau rule off.

    Every epoch's rate is written to its logs as ``lr`` (and so into the history). After the
    plateau decision the optimizer already holds the next epoch's rate, which a checkpoint written
    after this callback records. :meth:`get_state` / :meth:`set_state` carry the multiplier and the
    plateau counters; the epoch comes from ``fit``'s ``initial_epoch``, so a resumed run continues
    the schedule where it stopped.

    Args:
        schedule: the schedule (kind and constants).
        base_rate: α0, the rate the schedule starts from (after Horovod's ``scaleLearningRate``).
        monitor: the metric the plateau rule watches.
        patience: epochs without improvement before the multiplier shrinks; 0 = never.
        factor: what the multiplier is multiplied by on a plateau, in (0, 1).
        first_epoch: the epoch the schedule starts at (its epoch 0): a cascade stage's first epoch.

    Example:
        >>> ScheduledLearningRate(LrSchedule("cosine", warmup_epochs=2, epochs=20), 1e-3, patience=3, factor=0.5)
    """

    def __init__(self, schedule: LrSchedule, base_rate: float, monitor: str = "val_loss", patience: int = 0,
                 factor: float = 0.1, first_epoch: int = 0):
        super().__init__(monitor=monitor, factor=factor, patience=patience, verbose=0)
        self.schedule, self.base_rate = schedule, float(base_rate)
        self.first_epoch = int(first_epoch)
        self.multiplier = 1.0

    def rate(self, epoch: int) -> float:
        """The rate epoch ``epoch`` (0-based, counted over the run) trains at, given the plateau
        reductions so far."""
        return self.schedule.rate(epoch - self.first_epoch, self.base_rate) * self.multiplier

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.multiplier = 1.0
        self._apply_pending()

    def on_epoch_begin(self, epoch, logs=None):
        set_learning_rate(self.model.optimizer, self.rate(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = get_learning_rate(self.model.optimizer)
        current = (logs or {}).get(self.monitor)
        if self.patience > 0 and current is not None:
            if self.in_cooldown():
                self.cooldown_counter -= 1
                self.wait = 0
            if self._improves(current):
                self.best, self.wait = current, 0
            elif not self.in_cooldown():
                self.wait += 1
                if self.wait >= self.patience:
                    self.multiplier *= self.factor
                    self.cooldown_counter, self.wait = self.cooldown, 0
        elif self.patience > 0:
            log.warning("the learning-rate plateau rule watches %r, which epoch %d did not report; it has: %s",
                        self.monitor, epoch + 1, ", ".join(sorted(logs or {})))
        set_learning_rate(self.model.optimizer, self.rate(epoch + 1))

    def _improves(self, current) -> bool:
        """Keras's own rule (``min_delta``, the mode from the metric's name) in Keras 2 and 3, whose
        ReduceLROnPlateau keep it in different places."""
        if hasattr(self, "_is_improvement"):  # Keras 3: the rule is set up lazily, best starts as None
            if self.monitor_op is None:
                self._set_monitor_op()
            return bool(self._is_improvement(current, self.best))
        return bool(self.monitor_op(current, self.best))

    def get_state(self) -> dict:
        return {"multiplier": float(self.multiplier), "wait": int(self.wait),
                "cooldown_counter": int(self.cooldown_counter), "best": _scalar_state(self.best)}

    def _apply_state(self, state: dict) -> None:
        self.multiplier = float(state["multiplier"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.best = _scalar_value(state["best"])


class RestoreBestEarlyStopping(_PendingState, tf.keras.callbacks.EarlyStopping):
    """Early stopping that always ends on the best weights, also when training runs to the last epoch.

    Keras restores the best weights only when it stops early; a user asking for early stopping
    expects the model of the best epoch either way. Its state (counters, best value and weights,
    whether it stopped) survives a checkpoint through :meth:`get_state` / :meth:`set_state`.
    """

    def __init__(self, monitor: str, patience: int):
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=True, verbose=0)
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._apply_pending()

    @property
    def stopped(self) -> bool:
        # Keras never stops at epoch 0, so a stopped run always has stopped_epoch > 0.
        return self.stopped_epoch > 0

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if not self.stopped and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def get_state(self) -> dict:
        """Counters and best value as JSON, best weights as a list of arrays (or None)."""
        return {"wait": int(self.wait), "stopped_epoch": int(self.stopped_epoch),
                "best_epoch": int(self.best_epoch), "best": _scalar_state(self.best),
                "best_weights": None if self.best_weights is None else [np.asarray(w) for w in self.best_weights]}

    def _apply_state(self, state: dict) -> None:
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_epoch = int(state["best_epoch"])
        self.best = _scalar_value(state["best"])
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else [np.array(w) for w in weights]


class CheckpointCallback(tf.keras.callbacks.Callback):
    """After every epoch saves everything training continues from, on every rank in step.

    It must come after the learning-rate and early-stopping callbacks in the callback list, so it
    records the state they leave at the end of the epoch. ``save(epoch, history, state)`` writes
    (rank 0 only); ``barrier()``, when given, makes every rank wait until the checkpoint of an
    epoch is written before any of them starts the next, so a rank that dies at the start of epoch
    k+1 never races the checkpoint of epoch k.
    """

    def __init__(self, save: Callable[[int, dict], None] | None, history_before: dict,
                 barrier: Callable[[], None] | None = None):
        super().__init__()
        self.save, self.barrier = save, barrier
        self.history = {k: list(v) for k, v in history_before.items()}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        if self.save is not None:
            self.save(epoch + 1, self.history)
        if self.barrier is not None:
            self.barrier()


class StageLog(tf.keras.callbacks.Callback):
    """Writes the cascade stage (1-based) into every epoch's logs as ``stage``, so the history
    (and MLflow, and the learning-curve plot) show which stage trained each epoch."""

    def __init__(self, stage: int):
        super().__init__()
        self.stage = int(stage)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = float(self.stage)


class CrashHook(tf.keras.callbacks.Callback):
    """Test-only fault injection (see ``deepflash.worker.loop``): ends this process with
    ``os._exit(1)`` at the start of ``epoch`` (1-based), once: the marker file is created first
    and a marker that exists disarms the hook."""

    def __init__(self, epoch: int, marker: str):
        super().__init__()
        self.epoch, self.marker = epoch, marker

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 != self.epoch:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        log.warning("DEEPFLASH_TEST_CRASH: rank process %d exits at the start of epoch %d", os.getpid(), epoch + 1)
        os._exit(1)


class BroadcastInitialWeights(tf.keras.callbacks.Callback):
    """Sets every rank's weights to rank 0's when training begins, with eager Horovod broadcasts
    named by position (nothing is traced or cached between fits)."""

    def __init__(self, hvd, root_rank: int = 0):
        super().__init__()
        self.hvd, self.root_rank = hvd, root_rank

    def on_train_begin(self, logs=None):
        for i, weight in enumerate(self.model.weights):
            weight.assign(self.hvd.broadcast(weight.value(), self.root_rank, name=f"deepflash_weight_{i}"))


class ShardedValidation(tf.keras.callbacks.Callback):
    """Validation on each process's own share of the validation rows, combined exactly.

    Each process evaluates its shard, then the per-shard means times their row counts are summed
    over all processes and divided by the total rows: the same numbers as one process evaluating
    every validation row (for mean-decomposable metrics: the loss, accuracy, mae, mse), at 1/N of
    the reading and compute. With per-example weights Keras's loss is the sum of weight times loss
    over the rows divided by the rows (not by the weights), so the weighted ``val_loss`` combines
    exactly in the same way; the other metrics are unweighted. It writes ``val_<metric>`` into the epoch's logs before the
    early-stopping and learning-rate callbacks read them.

    Args:
        dataset: this process's validation batches (finite).
        rows: the rows in ``dataset`` (0 is fine: the process contributes nothing).
        all_sum: sums a float64 array over all processes.
        steps: the evaluation's steps (a ``tf.distribute`` dataset needs them); None = to the end.
        global_metrics: the model's ``evaluate`` already combines every process's rows (Keras 2
            under a multi-worker ``tf.distribute`` strategy, whose metric states are all-reduced):
            every process evaluates ``steps`` steps (the strategy needs all of them in each step)
            and the results are used as they are.
    """

    def __init__(self, dataset, rows: int, all_sum, steps: int | None = None, global_metrics: bool = False):
        super().__init__()
        self.dataset, self.rows, self.all_sum = dataset, rows, all_sum
        self.steps, self.global_metrics = steps, global_metrics

    def on_epoch_end(self, epoch, logs=None):
        if self.global_metrics:
            result = self.model.evaluate(self.dataset, steps=self.steps, verbose=0, return_dict=True)
            if logs is not None:
                logs.update({f"val_{name}": float(value) for name, value in result.items()})
            return
        names = list(self.model.metrics_names)
        means = np.zeros(len(names))
        if self.rows:
            result = self.model.evaluate(self.dataset, steps=self.steps, verbose=0, return_dict=True)
            names = list(result)
            means = np.array([float(result[n]) for n in names])
        totals = self.all_sum(np.concatenate([means * self.rows, [float(self.rows)]]))
        if logs is not None and totals[-1] > 0:
            for name, total in zip(names, totals[:-1]):
                logs[f"val_{name}"] = float(total / totals[-1])


class AverageMetrics(tf.keras.callbacks.Callback):
    """Averages each process's training metrics over all processes at the end of every epoch, as
    Horovod's ``MetricAverageCallback`` does, so that every process logs and decides on the same
    numbers. The ``val_`` metrics (combined by :class:`ShardedValidation`) and ``lr`` are left alone.

    Args:
        all_sum: sums a float64 array over all processes.
        size: the number of processes.
    """

    def __init__(self, all_sum, size: int):
        super().__init__()
        self.all_sum, self.size = all_sum, size

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        names = sorted(k for k in logs if not k.startswith("val_") and k not in ("lr", "learning_rate", "stage"))
        totals = self.all_sum(np.array([float(logs[k]) for k in names], np.float64))
        for name, total in zip(names, totals):
            logs[name] = float(total / self.size)


class EpochLogger(tf.keras.callbacks.Callback):
    """One log line per epoch: its number, every metric and its seconds."""

    def __init__(self, epochs: int, prefix: str = ""):
        super().__init__()
        self.epochs, self.prefix = epochs, prefix
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()) if k not in ("lr", "stage"))
        log.info("%sepoch %d/%d %s (%.1fs)", self.prefix, epoch + 1, self.epochs, metrics,
                 time.time() - self._started)


def optimizer_variables(optimizer) -> list:
    """The optimizer's variables (iterations and slots), for legacy and current Keras optimizers."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def build_optimizer(optimizer, var_list: list) -> None:
    """Creates the optimizer's iteration counter and slot variables for ``var_list`` now, before the
    first step, so that they can be assigned from a checkpoint.

    Current Keras optimizers have ``build``. The legacy ones (``tf.keras.optimizers.legacy``, which
    Horovod's DistributedOptimizer wraps here) create their variables in ``apply_gradients``: one
    step of zero gradients, without cross-process aggregation, creates them; the values it leaves
    behind are overwritten by the caller from the checkpoint.
    """
    if hasattr(optimizer, "build") and not is_legacy_optimizer(optimizer):
        optimizer.build(var_list)
        return
    def step():
        zeros = [tf.zeros_like(v) for v in var_list]
        optimizer.apply_gradients(zip(zeros, var_list), experimental_aggregate_gradients=False)

    if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        # Under a tf.distribute strategy (backend "barrier") the step runs in each replica's context.
        tf.distribute.get_strategy().run(tf.function(step))
    else:
        step()


def get_learning_rate(optimizer) -> float | None:
    """The current learning rate as a float, or None when it is a schedule."""
    lr = optimizer.learning_rate
    if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
        return None
    return to_float(lr)


def set_learning_rate(optimizer, value: float) -> None:
    """Sets the rate, also before the first step (when a legacy optimizer still holds it as a float
    rather than a variable); a rate that is a Keras schedule is left alone."""
    if isinstance(optimizer.learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        return
    optimizer.learning_rate = value


def training_state(model, optimizer) -> dict[str, Any]:
    """Weights, optimizer variables and learning rate: the model's part of a checkpoint."""
    return {"weights": [np.asarray(w) for w in model.get_weights()],
            "optimizer": [np.asarray(v.numpy()) for v in optimizer_variables(optimizer)],
            "learning_rate": get_learning_rate(optimizer)}


def restore_training_state(model, optimizer, state: dict) -> None:
    """Puts :func:`training_state` back into a compiled model and its optimizer."""
    if state["optimizer"]:
        build_optimizer(optimizer, model.trainable_variables)
        variables = optimizer_variables(optimizer)
        shapes = [tuple(v.shape) for v in variables]
        saved = [tuple(np.shape(a)) for a in state["optimizer"]]
        if shapes != saved:
            raise ValueError(f"the checkpoint's optimizer state has variables of shapes {saved}, the optimizer "
                             f"{shapes}; use a new `runId`, or the same optimizer and layers to resume")
        for variable, value in zip(variables, state["optimizer"]):
            variable.assign(value)
    model.set_weights(state["weights"])
    if state.get("learning_rate") is not None:
        set_learning_rate(optimizer, state["learning_rate"])
