"""MAE random sampling: a training-free score of a network architecture on a time series.

DLOPT's low-cost estimate (Camero, Toutouh and Alba): draw an architecture's weights at random
many times, measure the mean absolute error (MAE) of each draw on the data without any training,
fit a normal distribution truncated at 0 to those MAEs (an MAE is never negative), and estimate
the probability that a draw reaches an MAE at or below a threshold. Architectures whose random
draws already come close to the data are the ones worth training; ``log_p`` ranks them.

The draws run in TensorFlow in batches (:mod:`deepflash.evolution.random_weights`: every weight
carries a leading draw axis, so one batch of draws is one set of ``einsum``/``matmul`` calls).
:func:`mae_random_sampling` scores one architecture in this process; :func:`sample_architectures`
scores several, one Spark task each. Worker-safe: it imports only NumPy, SciPy, TensorFlow
(lazily) and :mod:`deepflash.ml.timeseries`, never the estimator.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepflash.evolution.random_weights import draw_weights, forward, weight_shapes
from deepflash.ml.timeseries import window_arrays

log = logging.getLogger("deepflash.evolution")

INITS = ("glorot_uniform", "normal")
LAYER_TYPES = ("lstm", "dense")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")
# The default threshold is this fraction of the MAE of always predicting the mean of y: a draw
# "reaches a good error" when it halves the error of the best input-blind constant guess.
DEFAULT_THRESHOLD_FRACTION = 0.5
# Draws per batch are chosen so that the largest intermediate (draws x look_back x rows x 4 units
# for an LSTM) stays under this many floats (256 MB of float32).
BATCH_FLOATS = 64 * 2 ** 20


@dataclass(frozen=True)
class SamplingResult:
    """The MAE distribution of one architecture's random draws.

    Attributes:
        look_back: window length the architecture reads.
        architecture: units per layer, input to output, e.g. ``(1, 2, 2, 1)``.
        mean, std: the MAEs' mean and (population, ``ddof=0``) standard deviation; the fitted
            distribution is a normal with this location and scale, truncated to ``[0, inf)``.
        samples: how many draws were measured.
        p: estimated probability that a draw's MAE is ``<= threshold``.
        log_p: ``log(p)``, computed in log space so that a tiny ``p`` stays finite.
        threshold: the MAE threshold used for ``p``.
        init: how the weights were drawn, ``"glorot_uniform"`` or ``"normal"``.
        init_scale: the factor every drawn weight was multiplied by.
        layer_type: ``"lstm"`` or ``"dense"`` hidden layers.
        seconds: wall time of the sampling.
        maes: the per-draw MAEs, in draw order (not in :meth:`to_dict`).
    """

    look_back: int
    architecture: tuple[int, ...]
    mean: float
    std: float
    samples: int
    p: float
    log_p: float
    threshold: float
    init: str
    init_scale: float = 1.0
    layer_type: str = "lstm"
    seconds: float = 0.0
    maes: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The published listing's fields (``look_back``, ``architecture``, ``metrics``) plus the
        settings that produced them. ``log_p`` may be ``-inf`` when every draw sat at one MAE."""
        return {"look_back": self.look_back, "architecture": list(self.architecture),
                "metrics": {"log_p": self.log_p, "p": self.p, "mean": self.mean, "samples": self.samples,
                            "std": self.std},
                "threshold": self.threshold, "init": self.init, "init_scale": self.init_scale,
                "layer_type": self.layer_type,
                "seconds": self.seconds}


# --------------------------------------------------------------------------------- checks

def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` == {value!r}, must be an integer, found {type(value).__name__}")
    if value < low:
        raise ValueError(f"`{name}` == {value!r}, must be >= {low}")
    return int(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"`{name}` == {value!r}, must be one of: {', '.join(choices)}")
    return value.lower()


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` == {value!r}, must be a finite number > 0")
    return float(value)


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """``hidden`` as a tuple of units per hidden layer; raises naming ``hidden`` when it is not one."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(f"`hidden` == {hidden!r}, must be a list of units per hidden layer")
    if len(hidden) == 0:
        raise ValueError("`hidden` == [], must list the units of at least one hidden layer")
    return tuple(_integer(f"hidden[{i}]", units, 1) for i, units in enumerate(hidden))


@dataclass(frozen=True)
class _Settings:
    samples: int
    init: str
    init_scale: float
    layer_type: str
    activation: str
    output_activation: str
    threshold: float | None
    threshold_fraction: float
    batch: int | None
    seed: int


def _settings(samples, init, init_scale, layer_type, activation, output_activation, threshold, threshold_fraction,
              batch, seed) -> _Settings:
    return _Settings(
        samples=_integer("samples", samples, 1), init=_choice("init", init, INITS),
        init_scale=_positive("init_scale", init_scale),
        layer_type=_choice("layer_type", layer_type, LAYER_TYPES),
        activation=_choice("activation", activation, ACTIVATIONS),
        output_activation=_choice("output_activation", output_activation, ACTIVATIONS),
        threshold=None if threshold is None else _positive("threshold", threshold),
        threshold_fraction=_positive("threshold_fraction", threshold_fraction),
        batch=None if batch is None else _integer("batch", batch, 1), seed=_integer("seed", seed, 0))


def _check_data(x: Any, y: Any, look_back: int | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"`x` has shape {x.shape}, must be (rows, look_back, k) as window_arrays returns")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"`y` has shape {y.shape}, must be ({len(x)},): one label per row of `x`")
    if len(x) == 0:
        raise ValueError("`x` has 0 rows: the series is not longer than the look-back window")
    if look_back is not None and _integer("look_back", look_back, 1) != x.shape[1]:
        raise ValueError(f"`look_back` == {look_back}, but `x` holds windows of {x.shape[1]} steps")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("`x` or `y` holds NaN or infinite values")
    return x, y


def _auto_batch(rows: int, look_back: int, hidden: Sequence[int], samples: int) -> int:
    per_draw = max(1, rows * look_back * 4 * max(hidden))
    return max(1, min(samples, BATCH_FLOATS // per_draw))


def _fit(maes: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """(mean, std, p, log_p) of a normal with the MAEs' mean and std, truncated to [0, inf)."""
    from scipy.stats import truncnorm

    mean, std = float(np.mean(maes)), float(np.std(maes))
    if std == 0.0:
        return mean, std, float(mean <= threshold), 0.0 if mean <= threshold else -math.inf
    log_p = float(truncnorm.logcdf(threshold, -mean / std, math.inf, loc=mean, scale=std))
    return mean, std, math.exp(log_p), log_p


def mean_predictor_mae(y: np.ndarray) -> float:
    """MAE of always predicting the mean of ``y``: the input-blind baseline of the threshold."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(np.abs(y - y.mean())))


# ---------------------------------------------------------------------------------- sampling

def mae_random_sampling(x: np.ndarray, y: np.ndarray, hidden: Sequence[int], *, samples: int = 100,
                        init: str = "normal", init_scale: float = 1.0, threshold: float | None = None,
                        threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION, layer_type: str = "lstm",
                        activation: str = "tanh", output_activation: str = "linear", batch: int | None = None,
                        seed: int = 0, look_back: int | None = None) -> SamplingResult:
    """Scores the architecture ``[k, *hidden, 1]`` on ``(x, y)`` by random draws of its weights.

    No training: each of ``samples`` draws is evaluated as it was drawn, and the MAEs' normal fit,
    truncated to ``[0, inf)``, gives ``p = P(MAE <= threshold)``.

    Args:
        x: ``(rows, look_back, k)`` windows, e.g. from :func:`deepflash.ml.timeseries.window_arrays`.
        y: ``(rows,)`` labels.
        hidden: units per hidden layer, e.g. ``[2, 2]``.
        samples: how many weight draws, >= 1.
        init: ``"normal"`` (N(0, 1) for every weight, DLOPT's choice and the default) or
            ``"glorot_uniform"``; see :func:`draw_weights`. Untrained Glorot LSTMs output nearly
            0 whatever the input, so their MAEs barely spread and their ``log_p`` is very low;
            N(0, 1) draws spread, which is what this score measures.
        init_scale: multiplies every drawn weight (1 by default).
        threshold: the MAE a draw should reach; by default ``threshold_fraction`` times
            :func:`mean_predictor_mae` of ``y``.
        threshold_fraction: see ``threshold``; 0.5 by default.
        layer_type: ``"lstm"`` (stacked LSTMs, then a dense output unit) or ``"dense"``.
        activation: hidden activation: tanh, sigmoid, relu or linear.
        output_activation: the output unit's activation; linear by default (DLOPT used tanh).
        batch: draws evaluated at once; by default as many as keep a batch under ~256 MB. It
            changes memory and speed only, not the MAEs.
        seed: seeds the draws; the same seed, data and settings give the same MAEs.
        look_back: when given, must match ``x``'s window length.

    Example:
        >>> x, y = window_arrays(np.sin(2 * np.pi * np.arange(1000) / 100), look_back=2)
        >>> result = mae_random_sampling(x, y, [2, 2], samples=100)
        >>> result.architecture, result.samples
        ((1, 2, 2, 1), 100)
    """
    start = time.perf_counter()
    hidden = check_hidden(hidden)
    s = _settings(samples, init, init_scale, layer_type, activation, output_activation, threshold,
                  threshold_fraction, batch, seed)
    x, y = _check_data(x, y, look_back)
    rows, steps, k = x.shape
    threshold = s.threshold if s.threshold is not None else s.threshold_fraction * mean_predictor_mae(y)
    if threshold <= 0:
        raise ValueError(f"`y` is constant, so the default threshold ({s.threshold_fraction} x its mean-predictor "
                         "MAE) is 0; pass `threshold`")

    import tensorflow as tf

    shapes = weight_shapes(steps, k, hidden, s.layer_type)
    size = s.batch or _auto_batch(rows, steps, hidden, s.samples)
    rng = np.random.default_rng(s.seed)
    x32, y32 = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    # All draws up front (weights are small beside the activations), so `batch` is only a memory
    # knob: the same seed gives the same MAEs whatever the batch size.
    drawn = draw_weights(shapes, s.samples, s.init, rng, s.init_scale)
    maes = []
    for done in range(0, s.samples, size):
        weights = [w[done:done + size] for w in drawn]
        predictions = forward(x32, weights, hidden, s.layer_type, s.activation, s.output_activation)
        maes.append(tf.reduce_mean(tf.abs(predictions - y32[None, :]), axis=1).numpy())
    maes = np.concatenate(maes).astype(np.float64)
    mean, std, p, log_p = _fit(maes, threshold)
    result = SamplingResult(look_back=steps, architecture=(k, *hidden, 1), mean=mean, std=std, samples=s.samples,
                            p=p, log_p=log_p, threshold=threshold, init=s.init, init_scale=s.init_scale,
                            layer_type=s.layer_type,
                            seconds=time.perf_counter() - start, maes=tuple(maes.tolist()))
    log.info("MAE random sampling of %s at look-back %d: mean %.4f, std %.4f, log_p %.3f (%d draws, %.2fs)",
             list(result.architecture), steps, mean, std, log_p, s.samples, result.seconds)
    return result


# ------------------------------------------------------------------------------------- Spark

def _check_candidates(candidates: Any, steps: int) -> list[tuple[int, tuple[int, ...]]]:
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or len(candidates) == 0:
        raise ValueError(f"`candidates` == {candidates!r}, must be a non-empty list of (look_back, hidden)")
    checked = []
    for i, candidate in enumerate(candidates):
        if isinstance(candidate, (str, bytes)) or not isinstance(candidate, Sequence) or len(candidate) != 2:
            raise ValueError(f"`candidates[{i}]` == {candidate!r}, must be a pair (look_back, hidden)")
        look_back = _integer(f"candidates[{i}] look_back", candidate[0], 1)
        if look_back >= steps:
            raise ValueError(f"`candidates[{i}]` look_back == {look_back}, but the series has only {steps} steps: "
                             "no window would have a label")
        try:
            hidden = check_hidden(candidate[1])
        except (TypeError, ValueError) as e:
            raise type(e)(f"`candidates[{i}]`: {e}") from None
        checked.append((look_back, hidden))
    return checked


def _sample_task(candidate: tuple[int, tuple[int, ...]], series, settings: _Settings, threshold: float,
                 threads: int) -> SamplingResult:
    """One Spark task: windows of the series (from the task's closure) at the candidate's look-back, then sampling."""
    from deepflash.worker.devices import configure_tensorflow

    configure_tensorflow(threads=threads)
    look_back, hidden = candidate
    x, y = window_arrays(series, look_back)
    return mae_random_sampling(x, y, hidden, samples=settings.samples, init=settings.init,
                               init_scale=settings.init_scale, threshold=threshold,
                               layer_type=settings.layer_type, activation=settings.activation,
                               output_activation=settings.output_activation, batch=settings.batch,
                               seed=settings.seed)


def sample_architectures(spark, series_values: np.ndarray, candidates: Sequence[tuple[int, Sequence[int]]], *,
                         samples: int = 100, init: str = "normal", init_scale: float = 1.0,
                         threshold: float | None = None,
                         threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION, layer_type: str = "lstm",
                         activation: str = "tanh", output_activation: str = "linear", batch: int | None = None,
                         seed: int = 0) -> list[SamplingResult]:
    """MAE random sampling of several architectures, one Spark task each, in ``candidates`` order.

    The series travels in the tasks' closure (one job; Spark ships a large closure once per
    executor on a classic session); every task windows it at its own look-back. All
    candidates share one threshold, so their ``log_p`` compare: by default ``threshold_fraction``
    times the mean-predictor MAE of the whole series' target (first) column. Tasks that share an
    executor split its cores (TensorFlow's thread pools are capped per task). Each candidate is
    drawn with the same ``seed``, so its result does not depend on its position in the list.

    Args:
        spark: the SparkSession.
        series_values: ``(steps,)`` or ``(steps, k)`` ordered series, as ``window_arrays`` takes.
        candidates: ``(look_back, hidden)`` pairs, e.g. ``[(2, [2, 2]), (4, [8])]``.
        samples, init, init_scale, threshold, threshold_fraction: as in :func:`mae_random_sampling`.
        layer_type, activation, output_activation, batch, seed: as in :func:`mae_random_sampling`.

    Example:
        >>> series = np.sin(2 * np.pi * np.arange(1000) / 100)
        >>> [r.log_p for r in sample_architectures(spark, series, [(2, [2, 2]), (4, [8])])]
    """
    from deepflash.spark.tasks import run_tasks
    from deepflash.tuning.base import trial_threads

    s = _settings(samples, init, init_scale, layer_type, activation, output_activation, threshold,
                  threshold_fraction, batch, seed)
    series = np.asarray(series_values, dtype=np.float64)
    if series.ndim not in (1, 2) or len(series) == 0:
        raise ValueError(f"`series_values` has shape {series.shape}, must be (steps,) or (steps, k) with steps >= 1")
    if not np.isfinite(series).all():
        raise ValueError("`series_values` holds NaN or infinite values")
    checked = _check_candidates(candidates, len(series))
    if s.threshold is not None:
        shared = s.threshold
    else:
        shared = s.threshold_fraction * mean_predictor_mae(series if series.ndim == 1 else series[:, 0])
        if shared <= 0:
            raise ValueError("`series_values` is constant, so the default threshold is 0; pass `threshold`")
    threads = trial_threads(spark, len(checked))
    log.info("MAE random sampling of %d architecture(s) as Spark tasks, %d draws each, %d thread(s) per task",
             len(checked), s.samples, threads)
    task = functools.partial(_sample_task, series=series, settings=s, threshold=shared, threads=threads)
    return run_tasks(spark, task, checked)
