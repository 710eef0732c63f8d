"""One search trial: train a single-process model on the materialized data and score it.

Worker code: it runs inside a search trial's Spark task on an executor (or in the driver with plain
``Trials``), receives Param values and a :class:`~deepflash.data.plan.FitPlan`, and never imports the
estimator or touches a DataFrame.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from deepflash.data.plan import FitPlan
from deepflash.tuning.trial import TrialResult, TrialStatus

METRIC_EPOCHS = ("best", "last")


def score(history: dict, metric: str, mode: str, epoch: str) -> float:
    """The trial's metric from its per-epoch history: its best epoch, or its last."""
    if metric not in history:
        raise KeyError(f"`metric` {metric!r} is not in the trial's history; it has: {', '.join(sorted(history))}")
    values = [float(v) for v in history[metric]]
    if not values:
        raise ValueError(f"the trial's history has no epochs of {metric!r}")
    if epoch == "last":
        return values[-1]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan")
    return max(finite) if mode == "max" else min(finite)


# latency_ms: median milliseconds to predict one batch of this many rows, the same for every trial
# whatever its batchSize, so that trials compare on the network's cost alone.
LATENCY_ROWS = 256


def run_trial(values: dict, plan: FitPlan, metric: str, mode: str, metric_epoch: str,
              callbacks: Sequence[Any] = (), objectives: Sequence[tuple[str, str]] = ()) -> TrialResult:
    """Trains one configuration; returns its :class:`TrialResult`, FAILED on any error.

    Args:
        callbacks: extra Keras callbacks for the training (a pruner's, for Optuna).
        objectives: ``(metric, mode)`` pairs of a multi-objective search; their values go to the
            result's ``objectives`` (history metrics as ``metric_epoch`` says, or ``latency_ms``,
            ``num_params``). ``metric`` is the first.
    """
    started = time.time()
    try:
        from deepflash.worker.loop import train_network

        trained = train_network(values, plan, callbacks=callbacks)
        model, history = trained.model, trained.history
        measured = {"num_params": int(model.count_params()),
                    "latency_ms": batch_latency_ms(model, LATENCY_ROWS, plan.input_dim)}
        value = measured[metric] if metric in measured else score(history, metric, mode, metric_epoch)
        losses = history.get("loss", [])
        if not math.isfinite(value) or (losses and not math.isfinite(losses[-1])):
            raise FloatingPointError(f"the loss diverged (loss {losses[-1] if losses else 'n/a'}, {metric} {value})")
        scored = {}
        if len(objectives) > 1:
            scored = {m: float(measured[m]) if m in measured else score(history, m, d, metric_epoch)
                      for m, d in objectives}
        return TrialResult(TrialStatus.OK, params=values_for_table(values), metric=value, objectives=scored,
                           final={k: v[-1] for k, v in history.items() if v}, history=history, epochs=len(losses),
                           seconds=time.time() - started, **measured)
    except Exception as e:  # a failed trial is a result, not the end of the search
        return TrialResult.failure(e, time.time() - started, values_for_table(values))


def batch_latency_ms(model, batch_size: int, input_dim: int, repeats: int = 5) -> float:
    """Median milliseconds to classify one batch (after a warm-up call), on this worker's device."""
    import numpy as np

    x = np.zeros((batch_size, input_dim), dtype=np.float32)
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(x)
        times.append((time.perf_counter() - started) * 1000)
    return float(sorted(times)[len(times) // 2])


def values_for_table(values: dict) -> dict:
    """The trial's Param values for the trials table; the best trial's are set on the refit estimator,
    so every Param a search can choose that shapes training belongs here (the schedule's included)."""
    return {k: values[k] for k in ("layers", "augmentation", "kernelInitializer", "optimizer", "learningRate",
                                   "momentum", "loss", "batchSize", "epochs", "earlyStoppingPatience",
                                   "reduceLrPatience", "lrSchedule", "lrDecay", "lrStepEpochs", "lrStepFactor",
                                   "lrWarmupEpochs", "lrMinRate", "kerasBackend")
            if k in values}


def make_objective(base_values: dict, plan: FitPlan, metric: str, mode: str, metric_epoch: str):
    """A sample of the space (as hyperopt draws it) -> its :class:`TrialResult`, with the sample
    as stored. Pickles to plain data."""
    from deepflash.tuning.space import plain, to_params

    def objective(sample: dict) -> TrialResult:
        try:
            values = {**base_values, **to_params(sample, base_values["layers"])}
        except Exception as e:
            return TrialResult.failure(e, 0.0, dict(sample))
        return replace(run_trial(values, plan, metric, mode, metric_epoch), sample=plain(sample))

    return objective
