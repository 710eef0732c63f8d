"""The Keras callbacks that take training's decisions, the learning rate, early stopping and the
stop on a diverged (NaN or infinite) loss, and the optimizer state a checkpoint carries.

The two stateful callbacks (:class:`ScheduledLearningRate`, :class:`RestoreBestEarlyStopping`)
expose ``get_state()`` / ``set_state()``: the checkpoint (:class:`~deepflash.worker.checkpoint.Checkpoint`)
stores what they return and a resumed run hands it back, so a run continued from a checkpoint takes
exactly the decisions the uninterrupted run would have taken. :func:`optimizer_values` and
:func:`restore_training_state` do the same for the weights and the optimizer's variables.

The other callbacks of a fit live by concern: :mod:`deepflash.worker.sync` (what combines the
processes: validation, metric averaging, the initial weights) and :mod:`deepflash.worker.progress`
(per-epoch checkpoints and logs, the test-only crash hook).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf

from deepflash.networks.keras_compat import is_legacy_optimizer, to_float
from deepflash.networks.schedules import LrSchedule
from deepflash.worker.checkpoint import Checkpoint

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


class NonFiniteLossError(FloatingPointError):
    """Training diverged: a loss or the weights became NaN or infinite."""


class TrainTimeoutError(TimeoutError):
    """Training ran past its ``trainTimeout``."""


class StopAtDeadline(tf.keras.callbacks.Callback):
    """Ends the fit with :class:`TrainTimeoutError` at the first batch that ends past ``deadline``
    (a ``time.time()`` value), naming the ``trainTimeout`` and the epoch. Every rank checks the same
    deadline; a rank that stops first fails the fit for all.

    Example:
        >>> model.fit(ds, epochs=5, callbacks=[StopAtDeadline(time.time() + 60, 60)])
    """

    def __init__(self, deadline: float, timeout: float):
        super().__init__()
        self.deadline, self.timeout = float(deadline), float(timeout)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def _check(self) -> None:
        if time.time() > self.deadline:
            raise TrainTimeoutError(
                f"training ran past `trainTimeout` == {self.timeout:g} s, in epoch {self.epoch + 1}; raise "
                "`trainTimeout` (a fit with a `runId` resumes from its last finished epoch)")


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Ends the fit with :class:`NonFiniteLossError` as soon as the loss is NaN or infinite.

    Every batch's running ``loss`` is checked (so a diverged fit stops within the batch, not at
    the end of its epochs), every epoch's losses (``loss``, ``val_loss``, ...) too, and the weights
    when the fit ends: an update can make them NaN after the last finite loss. So a fit returns
    finite weights or raises; the error names the epoch and suggests a lower ``learningRate``.
    It goes before the checkpoint callback, so a diverged epoch is never checkpointed.

    Args:
        learning_rate: the ``learningRate`` Param, quoted in the error.

    Example:
        >>> model.fit(ds, epochs=5, callbacks=[StopOnNonFiniteLoss(0.5)])
    """

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = float(learning_rate)
        self.epoch = 0

    def _fail(self, what: str) -> None:
        raise NonFiniteLossError(
            f"{what} in epoch {self.epoch + 1}: training diverged; lower `learningRate` (now "
            f"{self.learning_rate:g}), or scale the features (e.g. StandardScaler)")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(to_float(loss)):
            self._fail(f"the training loss became {to_float(loss)} at batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch
        for name, value in sorted((logs or {}).items()):
            if name.endswith("loss") and value is not None and not np.isfinite(to_float(value)):
                self._fail(f"`{name}` became {to_float(value)}")

    def on_train_end(self, logs=None):
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            self._fail("the weights became NaN or infinite")


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
        optimizer.apply_gradients(zip(zeros, var_list, strict=True), experimental_aggregate_gradients=False)

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


def optimizer_values(optimizer) -> list[np.ndarray]:
    """The values of the optimizer's variables, as a checkpoint stores them."""
    return [np.asarray(v.numpy()) for v in optimizer_variables(optimizer)]


def restore_training_state(model, optimizer, checkpoint: Checkpoint) -> None:
    """Puts a checkpoint's weights, optimizer variables and learning rate into a compiled model and its optimizer."""
    if checkpoint.optimizer:
        build_optimizer(optimizer, model.trainable_variables)
        variables = optimizer_variables(optimizer)
        shapes = [tuple(v.shape) for v in variables]
        saved = [tuple(np.shape(a)) for a in checkpoint.optimizer]
        if shapes != saved:
            raise ValueError(f"the checkpoint's optimizer state has variables of shapes {saved}, the optimizer "
                             f"{shapes}; use a new `runId`, or the same optimizer and layers to resume")
        for variable, value in zip(variables, checkpoint.optimizer, strict=True):
            variable.assign(value)
    model.set_weights(checkpoint.weights)
    if checkpoint.learning_rate is not None:
        set_learning_rate(optimizer, checkpoint.learning_rate)
