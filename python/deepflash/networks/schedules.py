"""Learning-rate schedules: the rate of each epoch as a pure function of the epoch number.

Pure Python (no TensorFlow), so the driver validates and pickles a schedule, and tests compute
the expected rates with the same code path as the callback
(:class:`deepflash.worker.callbacks.ScheduledLearningRate`) that applies it.

``epoch`` is the 0-based epoch index Keras counts with: the first epoch is epoch 0 and trains at
``base`` (α0) for every schedule except ``inverse_sqrt`` and a ``cosine`` warm-up.

========================  ==========================================================================
``none``                  α0
``time``                  α0 / (1 + k·epoch)
``exponential``           α0 · exp(−k·epoch)
``inverse_sqrt``          α0 · k / √(epoch + 1): it counts epochs from 1, so the first epoch trains at
                          α0·k (k = 1 starts at α0)
``step``                  α0 · f^⌊epoch / n⌋: multiplied by f every n epochs
``cosine``                a linear warm-up over w epochs, α0·(epoch + 1)/w, then from α0 down towards
                          m over the remaining E − w epochs:
                          m + (α0 − m)·(1 + cos(π·(epoch − w)/(E − w)))/2
========================  ==========================================================================

with k = ``lrDecay``, n = ``lrStepEpochs``, f = ``lrStepFactor``, w = ``lrWarmupEpochs``,
m = ``lrMinRate`` and E = ``epochs``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("none", "time", "exponential", "inverse_sqrt", "step", "cosine")


@dataclass(frozen=True)
class LrSchedule:
    """A learning-rate schedule and its constants (see the module docstring for the formulas).

    Args:
        kind: one of :data:`SCHEDULES`.
        decay: k of ``time``, ``exponential`` and ``inverse_sqrt``.
        step_epochs: n of ``step``.
        step_factor: f of ``step``.
        warmup_epochs: w of ``cosine``.
        min_rate: m of ``cosine``.
        epochs: E, the run's total epochs, over which ``cosine`` decays.

    Example:
        >>> LrSchedule("step", step_epochs=2, step_factor=0.5).rate(3, base=0.1)
        0.05
    """

    kind: str = "none"
    decay: float = 0.1
    step_epochs: int = 10
    step_factor: float = 0.5
    warmup_epochs: int = 0
    min_rate: float = 0.0
    epochs: int = 10

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"`lrSchedule` == {self.kind!r}, must be one of: {', '.join(SCHEDULES)}")

    @classmethod
    def from_values(cls, values: dict) -> LrSchedule:
        """The schedule that estimator Param values (``KerasEstimator.paramValues()``) describe."""
        return cls(kind=values["lrSchedule"], decay=float(values["lrDecay"]), step_epochs=int(values["lrStepEpochs"]),
                   step_factor=float(values["lrStepFactor"]), warmup_epochs=int(values["lrWarmupEpochs"]),
                   min_rate=float(values["lrMinRate"]), epochs=int(values["epochs"]))

    def rate(self, epoch: int, base: float) -> float:
        """The learning rate of 0-based ``epoch`` when the schedule starts from ``base`` (α0)."""
        if epoch < 0:
            raise ValueError(f"epoch == {epoch}, must be >= 0")
        if self.kind == "time":
            return base / (1.0 + self.decay * epoch)
        if self.kind == "exponential":
            return base * math.exp(-self.decay * epoch)
        if self.kind == "inverse_sqrt":
            return base * self.decay / math.sqrt(epoch + 1)
        if self.kind == "step":
            return base * self.step_factor ** (epoch // self.step_epochs)
        if self.kind == "cosine":
            if epoch < self.warmup_epochs:
                return base * (epoch + 1) / self.warmup_epochs
            progress = (epoch - self.warmup_epochs) / max(1, self.epochs - self.warmup_epochs)
            return self.min_rate + (base - self.min_rate) * (1.0 + math.cos(math.pi * progress)) / 2.0
        return base


def check_schedule(schedule: LrSchedule, learning_rate: float) -> None:
    """The checks that need a schedule's constants together with ``learningRate`` and ``epochs``.

    Raises:
        ValueError: naming the Param, what it must be and what it is.
    """
    if schedule.kind == "inverse_sqrt" and schedule.decay <= 0:
        raise ValueError(f"`lrDecay` == {schedule.decay!r}, must be > 0 with lrSchedule='inverse_sqrt' "
                         "(the rate is learningRate * lrDecay / sqrt(epoch))")
    if schedule.kind == "cosine":
        if schedule.warmup_epochs >= schedule.epochs:
            raise ValueError(f"`lrWarmupEpochs` == {schedule.warmup_epochs}, must be < epochs ({schedule.epochs}) "
                             "with lrSchedule='cosine': the cosine decay needs at least one epoch after the warm-up")
        if schedule.min_rate >= learning_rate:
            raise ValueError(f"`lrMinRate` == {schedule.min_rate!r}, must be < learningRate ({learning_rate!r}) "
                             "with lrSchedule='cosine'")
