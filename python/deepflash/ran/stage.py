"""RANEstimator and RANModel: Platt's resource-allocating network as Spark ML stages.

Training is Platt's sequential rule (:mod:`deepflash.ran.core`): one example at a time, in order,
so it runs in ONE Python process on ONE executor. The data reaches that process as a stream of
Arrow batches (``mapInArrow`` over a single partition) and is never collected to the driver; only
the network (a few arrays of ``maxUnits`` rows) comes back. Throughput is bounded by that one
process, about 10^4 to 10^5 examples a second for a few dozen units: a RAN suits small,
low-dimensional regression problems. Scoring (``transform``) runs on every executor.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.ml import Estimator, Model
from pyspark.ml.param import TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepflash.data.schema import FEATURES, LABEL, features_as_array, prepare, summarize
from deepflash.ml.converters import add_accessors, to_number, to_str
from deepflash.ml.param_table import ParamSpec, declare_params, keyword_params, names, set_defaults
from deepflash.ml.persistence import StageReader, StageWriter
from deepflash.ran.core import RAN, RANSettings, RBFNetwork
from deepflash.serving.scoring import feature_matrix

log = logging.getLogger("deepflash")

STATE_FILE = ("ran", "network.npz")
_EPOCH = "__deepflash_epoch"
_KEY = "__deepflash_order"
# What the training task sends back: the network (npz bytes), units after each pass, examples seen.
_STATE_SCHEMA = pa.schema([("network", pa.binary()), ("history", pa.list_(pa.int64())), ("seen", pa.int64())])


_DEFAULTS = RANSettings()
RAN_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("featuresCol", "features column name", to_str("featuresCol"), "features", transform=True),
    ParamSpec("labelCol", "label column name", to_str("labelCol"), "label"),
    ParamSpec("predictionCol", "prediction column name", to_str("predictionCol"), "prediction", transform=True),
    ParamSpec("seed", "the order of the examples in each pass", TypeConverters.toInt, 0),
    ParamSpec("distanceMax", "delta_max: the starting distance threshold for a new unit, > 0",
              to_number("distanceMax", low=0, low_open=True), _DEFAULTS.distance_max),
    ParamSpec("distanceMin", "delta_min: the distance threshold never falls below this, > 0 and <= distanceMax",
              to_number("distanceMin", low=0, low_open=True), _DEFAULTS.distance_min),
    ParamSpec("distanceDecay", "tau: the threshold decays as exp(-t / tau), t counted in examples, > 0",
              to_number("distanceDecay", low=0, low_open=True), _DEFAULTS.distance_decay),
    ParamSpec("errorThreshold", "epsilon: a unit is added only when |target - output| exceeds this, >= 0",
              to_number("errorThreshold", low=0), _DEFAULTS.error_threshold),
    ParamSpec("overlap", "kappa: a new unit's width is overlap x the distance to the nearest centre, > 0",
              to_number("overlap", low=0, low_open=True), _DEFAULTS.overlap),
    ParamSpec("learningRate", "alpha: the LMS step size, > 0", to_number("learningRate", low=0, low_open=True),
              _DEFAULTS.learning_rate),
    ParamSpec("epochs", "passes over the data, >= 1", to_number("epochs", integer=True, low=1), 1),
    ParamSpec("maxUnits", "the most units the network may grow to, >= 1", to_number("maxUnits", integer=True, low=1),
              _DEFAULTS.max_units),
    ParamSpec("adaptCentres", "also move the centres by gradient descent (Platt's rule), not only the output weights "
              "and bias", TypeConverters.toBoolean, _DEFAULTS.adapt_centres),
    # What a fitted RANModel learned: set by fit, getters only.
    ParamSpec("inputDim", "length of the feature vector", to_number("inputDim", integer=True, low=1), fitted=True),
    ParamSpec("unitHistory", "units after each pass of the fit", TypeConverters.toListInt, [], fitted=True),
    ParamSpec("examplesSeen", "examples presented during the fit (rows x epochs)",
              to_number("examplesSeen", integer=True, low=0), 0, fitted=True),
)
_ESTIMATOR_PARAMS = tuple(spec for spec in RAN_PARAMS if not spec.fitted)
_FITTED_PARAMS = tuple(spec for spec in RAN_PARAMS if spec.fitted)
PARAM_NAMES = names(_ESTIMATOR_PARAMS)


class RANParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed):
    """Params shared by RANEstimator and RANModel (Platt's symbols in the docs); the learning rule's
    defaults are those of :class:`~deepflash.ran.core.RANSettings`."""

    def __init__(self) -> None:
        super().__init__()
        set_defaults(self, _ESTIMATOR_PARAMS)

    def settings(self) -> RANSettings:
        """The learning rule's constants; raises, naming the Params, when they contradict each other."""
        low, high = self.getOrDefault(self.distanceMin), self.getOrDefault(self.distanceMax)
        if low > high:
            raise ValueError(f"`distanceMin` == {low!r}, must be <= `distanceMax` ({high!r})")
        return RANSettings(distance_max=high, distance_min=low,
                           distance_decay=self.getOrDefault(self.distanceDecay),
                           error_threshold=self.getOrDefault(self.errorThreshold),
                           overlap=self.getOrDefault(self.overlap),
                           learning_rate=self.getOrDefault(self.learningRate),
                           max_units=self.getOrDefault(self.maxUnits),
                           adapt_centres=self.getOrDefault(self.adaptCentres))


declare_params(RANParams, _ESTIMATOR_PARAMS)


def _trainer(settings: RANSettings, input_dim: int):
    """The function ``mapInArrow`` runs on the single training partition.

    Batches arrive sorted by (epoch, order key); a change of epoch closes a pass. Features come
    out of Arrow's list column as one flat float32 buffer, reshaped, with no per-row Python.
    """

    def train(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ran = RAN(settings, input_dim)
        epoch = None
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            x = batch.column(0).flatten().to_numpy(zero_copy_only=False).reshape(n, input_dim)
            y = batch.column(1).to_numpy(zero_copy_only=False)
            epochs = batch.column(2).to_numpy(zero_copy_only=False)
            cuts = np.flatnonzero(np.diff(epochs)) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
                if epoch is not None and epochs[lo] != epoch:
                    ran.end_pass()
                epoch = epochs[lo]
                ran.learn(x[lo:hi], y[lo:hi])
        if epoch is not None:
            ran.end_pass()
            yield pa.RecordBatch.from_pydict({
                "network": [ran.network().to_bytes()], "history": [ran.unit_history], "seen": [ran.seen]},
                schema=_STATE_SCHEMA)

    return train


def training_order(data: DataFrame, epochs: int, seed: int) -> DataFrame:
    """(features, label, epoch) rows in the order training sees them, in ONE partition.

    Each pass is the data sorted by a hash of (row, pass, seed): the order depends on the data and
    the seed only, not on how the data is partitioned (equal rows tie, and are interchangeable).
    Spark's sort spills to disk, so the one training task holds a batch at a time, not the data.

    Args:
        data: the first two columns are the features (``array<float>``) and the label (double).
        epochs: passes; the data is repeated this many times.
        seed: the order's seed.
    """
    features, label = data.columns[:2]
    passes = data.sparkSession.range(epochs).select(F.col("id").alias(_EPOCH))
    return (data.select(features, label).crossJoin(passes)
            .withColumn(_KEY, F.xxhash64(F.col(features), F.col(label), F.col(_EPOCH), F.lit(seed)))
            .repartition(1).sortWithinPartitions(_EPOCH, _KEY)
            .select(features, label, _EPOCH))


class RANEstimator(Estimator, RANParams, DefaultParamsReadable, DefaultParamsWritable):
    """Platt's resource-allocating network (1991): a Gaussian RBF network for regression with ONE
    output that grows a unit for each example that is both far from every centre (distance >
    delta(t)) and badly predicted (|error| > ``errorThreshold``), and otherwise takes an LMS step.

    Training is sequential and runs in one Python process on one executor, streaming the data as
    Arrow batches from a single partition (each pass in a fresh order, a hash of each row and
    ``seed``, so the same data gives the same network however it is partitioned); nothing is
    collected to the driver but the network. That one process bounds its speed: use it for small,
    low-dimensional problems. ``transform`` scores on all executors.

    Args:
        featuresCol: a Vector or numeric-array column (no nulls or NaN).
        labelCol: a numeric target.
        distanceMax, distanceMin, distanceDecay: delta_max, delta_min and tau (in examples) of the
            distance threshold delta(t) = max(delta_max * exp(-t / tau), delta_min).
        errorThreshold: epsilon, in the target's units.
        overlap: kappa: a new unit's width is kappa times the distance to the nearest centre.
        learningRate: alpha of the LMS steps.
        epochs: passes over the data.
        maxUnits: the cap on units; at the cap, every example takes an LMS step.
        adaptCentres: move the centres too (Platt's rule), not only output weights and bias.
        seed: the order of the examples in each pass.

    Example:
        >>> model = RANEstimator(epochs=5, errorThreshold=0.02).fit(df)   # features, label
        >>> model.numUnits, model.getUnitHistory()
        >>> model.transform(df).select("prediction")
    """

    @keyword_params(_ESTIMATOR_PARAMS)
    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.setParams(**params)

    @keyword_params(_ESTIMATOR_PARAMS, returns="RANEstimator")
    def setParams(self, **params: Any) -> RANEstimator:
        """Sets Params by keyword; returns self. A keyword that names no Param raises TypeError."""
        return self._set(**params)

    def _fit(self, dataset: DataFrame) -> RANModel:
        settings = self.settings()
        epochs, seed = self.getEpochs(), self.getSeed()
        features_col, label_col = self.getFeaturesCol(), self.getLabelCol()
        # Column checks (prepare) need no job; summarize is the one validation pass (empty data,
        # nulls, NaN, ragged vectors) and runs before training.
        prepared = prepare(dataset, features_col, label_col, None, 0.0, seed)
        summary = summarize(prepared, task="regression", features_col=features_col, label_col=label_col,
                            key_extra={})
        ordered = training_order(prepared.select(FEATURES, LABEL), epochs, seed)
        schema = T.StructType([T.StructField("network", T.BinaryType()),
                               T.StructField("history", T.ArrayType(T.LongType())),
                               T.StructField("seen", T.LongType())])
        state = ordered.mapInArrow(_trainer(settings, summary.input_dim), schema).collect()[0]
        model = self._copyValues(RANModel())
        for name, value in (("inputDim", summary.input_dim), ("unitHistory", [int(v) for v in state["history"]]),
                            ("examplesSeen", int(state["seen"]))):
            model.set(model.getParam(name), value)
        model.setStateBytes(bytes(state["network"]))
        log.info("RAN: %d units after %d pass(es) over %d rows; units after each pass: %s",
                 model.numUnits, epochs, summary.rows, model.getUnitHistory())
        return model


def _scorer(network: RBFNetwork, features_col: str):
    """Feature arrays in, predictions out: per Arrow batch one matrix and one vectorised RBF pass."""

    def score(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for features in batches:
            yield pd.Series(network.predict(feature_matrix(features, network.input_dim, features_col)))

    return score


class RANModelParams(RANParams):
    """What a fitted RANModel learned (the fitted Params of :data:`RAN_PARAMS`)."""

    def __init__(self) -> None:
        super().__init__()
        set_defaults(self, _FITTED_PARAMS)


declare_params(RANModelParams, _FITTED_PARAMS)


class RANModel(Model, RANModelParams, MLReadable, MLWritable):
    """A fitted RAN. ``transform`` adds ``predictionCol`` (double), scored on the executors.

    ``numUnits`` is the network's size, ``getUnitHistory()`` the units after each training pass,
    ``unitGrowth(every)`` the units after every ``every`` examples, and ``getNetwork()`` the
    centres, widths, output weights and bias. Only ``featuresCol`` and ``predictionCol`` have
    setters; the other Params record how the model was fitted.
    """

    def __init__(self) -> None:
        super().__init__()
        self._network: RBFNetwork | None = None

    def stateBytes(self) -> bytes | None:
        """The network as npz bytes (:class:`~deepflash.ml.persistence.BinaryState`), or None."""
        return None if self._network is None else self._network.to_bytes()

    def setStateBytes(self, data: bytes) -> None:
        """Takes a network saved by :meth:`stateBytes`, decoded now."""
        self._network = RBFNetwork.from_bytes(data)

    def getNetwork(self) -> RBFNetwork:
        if self._network is None:
            raise ValueError("this RANModel holds no network; get one from RANEstimator.fit or RANModel.load")
        return self._network

    @property
    def numUnits(self) -> int:
        return self.getNetwork().num_units

    def unitGrowth(self, every: int) -> list[int]:
        """Units after every ``every`` examples of the fit (examples = rows x epochs)."""
        every = to_number("every", integer=True, low=1)(every)
        allocated = np.sort(self.getNetwork().allocated_at)
        marks = np.arange(every, self.getExamplesSeen() + 1, every)
        return np.searchsorted(allocated, marks, side="left").tolist()

    def copy(self, extra=None) -> RANModel:
        copied = super().copy(extra)
        copied._network = self._network
        return copied

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls, STATE_FILE)

    def write(self) -> StageWriter:
        return StageWriter(self, STATE_FILE)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        network = self.getNetwork()
        features_col, pred_col = self.getFeaturesCol(), self.getPredictionCol()
        if pred_col in dataset.columns:
            raise ValueError(f"`predictionCol` == {pred_col!r}: the DataFrame already has a column of that name; "
                             "set another name or drop it")
        x = features_as_array(dataset, "featuresCol", features_col)
        predict = F.pandas_udf(_scorer(network, features_col), T.DoubleType())
        return dataset.withColumn(pred_col, predict(x))


add_accessors(RANEstimator, PARAM_NAMES)
add_accessors(RANModel, names(RAN_PARAMS), setters=names(spec for spec in RAN_PARAMS if spec.transform))
