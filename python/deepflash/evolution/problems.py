"""Architecture search problems on a time series: :class:`MAERandomSamplingProblem` (no
training) and :class:`TrainedErrorProblem` (a short training run).

Both hold the series itself (a NumPy array; a problem is pickled into each Spark task that
evaluates it) and an :class:`~deepflash.evolution.architecture.ArchitectureSpace`; an individual's
windows are cut in the task with :func:`deepflash.ml.timeseries.window_arrays` at its own look-back.
Worker-safe: they import TensorFlow lazily, and never the estimator.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepflash.evolution.architecture import Architecture, ArchitectureSpace
from deepflash.evolution.problem import Problem
from deepflash.evolution.sampling import ACTIVATIONS as SAMPLING_ACTIVATIONS
from deepflash.evolution.sampling import mae_random_sampling
from deepflash.ml.timeseries import window_arrays


def _series(values) -> np.ndarray:
    series = np.asarray(values, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2 or not len(series):
        raise ValueError(f"expected a non-empty series of shape (steps,) or (steps, k), found {series.shape}")
    if not np.isfinite(series).all():
        raise ValueError("the series holds NaN or infinite values")
    return series


class ArchitectureProblem(Problem):
    """A problem whose solutions are :class:`Architecture` objects on one series."""

    def __init__(self, series, space: ArchitectureSpace):
        self.series = _series(series)
        if space.features != self.series.shape[1]:
            raise ValueError(f"the space has {space.features} features per step, the series "
                             f"{self.series.shape[1]} columns")
        min_rows = len(self.series) - space.look_back[1]
        if min_rows < 2:
            raise ValueError(f"`maxLookBack` == {space.look_back[1]} leaves {max(min_rows, 0)} windows of a "
                             f"{len(self.series)}-step series; use a longer series or a shorter look-back")
        self.space = space

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.space.bounds()

    def encode(self, decoded: Architecture) -> tuple[int, ...]:
        return self.space.encode(decoded)

    def decode(self, encoding: Sequence[int]) -> Architecture:
        return self.space.decode(self.check_encoding(encoding))

    def describe(self, encoding: Sequence[int]) -> dict:
        return self.decode(encoding).as_dict()


class MAERandomSamplingProblem(ArchitectureProblem):
    """Fitness: ``log_p`` of :func:`deepflash.evolution.sampling.mae_random_sampling` (maximised); no
    training. Layer type and activation are searched when the space offers more than one.

    Args:
        series: the ordered values, ``(steps,)`` or ``(steps, k)``; the first column is the target.
        space: the architecture bounds.
        samples: weight draws per architecture.
        init: ``normal`` (N(0, 1), DLOPT's choice and the sampling's default) or ``glorot_uniform``.
        threshold: the MAE a draw should reach; None for the sampling's default (a fraction of
            the MAE of always predicting the mean).
        seed: seeds the draws (every architecture gets the same seed).

    Example:
        >>> problem = MAERandomSamplingProblem(np.sin(np.arange(500) / 8), ArchitectureSpace())
        >>> problem.evaluate(Architecture(2, (1, 2, 2, 1)))
        (-1.3...,)
    """

    maximize = (True,)

    def __init__(self, series, space: ArchitectureSpace, *, samples: int = 100, init: str = "normal",
                 threshold: float | None = None, seed: int = 0):
        super().__init__(series, space)
        unsupported = [a for a in space.activations if a not in SAMPLING_ACTIVATIONS]
        if unsupported:
            raise ValueError(f"`activations` == {list(space.activations)}: MAE random sampling draws "
                             f"{', '.join(SAMPLING_ACTIVATIONS)} only, found {unsupported}")
        self.samples, self.init, self.threshold, self.seed = int(samples), init, threshold, int(seed)

    def evaluate_decoded(self, decoded: Architecture) -> tuple[float, ...]:
        x, y = window_arrays(self.series, decoded.look_back)
        result = mae_random_sampling(x, y, decoded.hidden, samples=self.samples, init=self.init,
                                     threshold=self.threshold, layer_type=decoded.layer_type,
                                     activation=decoded.activation, seed=self.seed)
        return (float(result.log_p),)


@dataclass(frozen=True)
class TrainingSettings:
    """How :class:`TrainedErrorProblem` trains each architecture (KerasEstimator's names in brackets).

    Args:
        epochs: (``epochs``) passes over the training windows.
        batch_size: (``batchSize``).
        optimizer, learning_rate, momentum, nesterov: (``optimizer``, ``learningRate``, ...).
        loss: (``loss``) ``mse`` or ``mae``; the fitness is the validation MAE either way.
        kernel_initializer: (``kernelInitializer``).
        validation_fraction: (``validationSplit``) the last fraction of the series whose values are
            the validation targets; the windows before train.
        seed: (``seed``) seeds the weights and the shuffling.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    loss: str = "mse"
    kernel_initializer: str = "glorot_uniform"
    validation_fraction: float = 0.2
    seed: int = 0

    @classmethod
    def from_values(cls, values: dict, epochs: int | None = None) -> TrainingSettings:
        """From KerasEstimator's :meth:`~deepflash.KerasEstimator.paramValues`; ``epochs`` overrides its epochs."""
        loss = values.get("loss", "auto")
        return cls(epochs=int(epochs or values["epochs"]), batch_size=int(values["batchSize"]),
                   optimizer=values["optimizer"], learning_rate=float(values["learningRate"]),
                   momentum=float(values.get("momentum", 0.0)), nesterov=bool(values.get("nesterov", False)),
                   loss="mse" if loss == "auto" else loss,
                   kernel_initializer=values.get("kernelInitializer", "glorot_uniform"),
                   validation_fraction=float(values.get("validationSplit") or 0.2), seed=int(values["seed"]))

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "mae"):
            raise ValueError(f"`loss` == {self.loss!r}, must be mse or mae for a time-series regression")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"`validationSplit` == {self.validation_fraction!r}, must be in (0, 1)")
        for name, value in (("epochs", self.epochs), ("batchSize", self.batch_size)):
            if value < 1:
                raise ValueError(f"`{name}` == {value!r}, must be >= 1")


def chronological_split(steps: int, look_back: int, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, validation) over the windows of a ``steps``-long series: a window is
    validation when its target lies in the last ``validation_fraction`` of the series, so every
    look-back is scored on the same targets."""
    first_val = steps - int(round(steps * validation_fraction))
    targets = np.arange(max(steps - look_back, 0)) + look_back
    val = targets >= first_val
    return ~val, val


class TrainedErrorProblem(ArchitectureProblem):
    """Fitness: the validation MAE (minimised) after a short training run of the architecture.

    Each evaluation builds the network with :func:`deepflash.networks.layers.build_model` (as
    KerasEstimator does: flat window in, reshaped to ``(look_back, k)`` for LSTMs, one linear
    output) and trains it with plain Keras on the task's in-memory windows, with
    KerasEstimator's optimizer, loss, batch size and seed. Plain Keras, not
    :func:`deepflash.worker.loop.train_network`: that trains from a FitPlan's data materialized in
    the store, whose feature length is fixed, while each individual here has its own look-back.

    Args:
        series: the ordered values, ``(steps,)`` or ``(steps, k)``; the first column is the target.
        space: the architecture bounds.
        settings: how each architecture trains.

    Example:
        >>> problem = TrainedErrorProblem(np.sin(np.arange(500) / 8), ArchitectureSpace(),
        ...                               TrainingSettings(epochs=5))
        >>> problem.evaluate(Architecture(4, (1, 8, 1)))
        (0.05...,)
    """

    maximize = (False,)

    def __init__(self, series, space: ArchitectureSpace, settings: TrainingSettings | None = None):
        super().__init__(series, space)
        self.settings = settings or TrainingSettings()
        train, val = chronological_split(len(self.series), space.look_back[1], self.settings.validation_fraction)
        if not train.any() or not val.any():
            raise ValueError(f"`validationSplit` == {self.settings.validation_fraction} of a {len(self.series)}-step "
                             f"series at look-back {space.look_back[1]} leaves {int(train.sum())} training and "
                             f"{int(val.sum())} validation windows; both need at least one")

    def evaluate_decoded(self, decoded: Architecture) -> tuple[float, ...]:
        import tensorflow as tf

        from deepflash.networks.optimizers import make_optimizer

        s = self.settings
        x, y = window_arrays(self.series, decoded.look_back)
        x = x.reshape(len(x), -1).astype(np.float32)
        y = y.astype(np.float32)
        train, val = chronological_split(len(self.series), decoded.look_back, s.validation_fraction)
        # A reused Spark worker evaluates many networks: drop the earlier ones' graphs.
        tf.keras.backend.clear_session()
        model = decoded.keras_model(seed=s.seed, kernel_initializer=s.kernel_initializer)
        model.compile(optimizer=make_optimizer(s.optimizer, s.learning_rate, s.momentum, s.nesterov), loss=s.loss)
        model.fit(x[train], y[train], batch_size=s.batch_size, epochs=s.epochs, shuffle=True, verbose=0)
        # A direct call, not predict(): predict traces a new function for every network.
        predicted = np.asarray(model(x[val], training=False))[:, 0]
        return (float(np.mean(np.abs(predicted - y[val]))),)
