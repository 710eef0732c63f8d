"""KerasModel: scores a DataFrame on the executors with a pandas UDF, Arrow batch by batch."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.ml import Model
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepflash.data.schema import features_as_array
from deepflash.io.keras_files import cached_model, model_digest, model_from_bytes, model_to_bytes
from deepflash.ml.converters import add_accessors
from deepflash.ml.fit_info import FitInfo
from deepflash.ml.param_table import keyword_params
from deepflash.ml.params import (
    MODEL_PARAM_NAMES,
    SHARED_PARAM_NAMES,
    TRANSFORM_PARAM_NAMES,
    TRANSFORM_PARAMS,
    KerasModelParams,
)
from deepflash.ml.persistence import MODEL_FILE, StageReader, StageWriter
from deepflash.networks.keras_backends import prefer_backend
from deepflash.networks.keras_compat import output_shape
from deepflash.serving.scoring import feature_matrix, network_outputs, predict_batch_rows, score_outputs
from deepflash.spark import session
from deepflash.worker.devices import configure_devices

log = logging.getLogger("deepflash")

_OUT = "__deepflash_out"


def batch_predictor(data: bytes, digest: str, output_kind: str, input_dim: int, width: int, features_col: str,
                    keras_backend: str | None = None):
    """The scoring function: feature arrays in, a struct of (prediction, p_0 .. p_{width-1}) out.

    The model's bytes ``data`` travel in this function's closure, the same way on classic and
    Connect sessions (a classic SparkContext ships a closure this big as a broadcast itself). Per
    Arrow batch, Arrow's list column becomes one (rows, input_dim) float32 matrix with one C
    concatenation (no Python loop over rows), and the probabilities leave as ``width`` double
    columns that the JVM assembles into a Vector, so no Python object is built per row. The model
    is deserialized once per Python worker process and ``digest`` (Spark reuses its workers), on
    the task's GPU with memory growth when the executor has GPUs. ``keras_backend`` (the
    ``kerasBackend`` Param) is the framework a Python worker that has not imported Keras yet
    scores on (:func:`~deepflash.networks.keras_backends.prefer_backend`).
    """

    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        prefer_backend(keras_backend)
        configure_devices()
        model = cached_model(data, digest)
        rows_per_call = predict_batch_rows(model)
        for features in batches:
            x = feature_matrix(features, input_dim, features_col)
            prediction, probability = score_outputs(network_outputs(model, x, rows_per_call), output_kind, width)
            cols = {"prediction": prediction}
            if probability is not None:
                cols.update({f"p{k}": probability[:, k] for k in range(width)})
            yield pd.DataFrame(cols)

    return predict


class KerasModel(Model, KerasModelParams, MLReadable, MLWritable):
    """A fitted Keras network as a Spark ML Model.

    ``transform`` keeps every input column and adds ``predictionCol`` (double) and, for
    classification, ``probabilityCol`` (a Vector of class probabilities). It runs on the executors
    and collects nothing to the driver. Every Param has a getter; only the columns ``transform``
    reads and writes (``featuresCol``, ``predictionCol``, ``probabilityCol``) have setters, as in
    pyspark Models: the training Params record how the model was fitted. ``__init__`` and
    :meth:`setParams` take those three by keyword.

    Attributes:
        fitInfo: what the fit that made this model did (:class:`~deepflash.ml.fit_info.FitInfo`);
            None for a model loaded from disk, which does not save it.
    """

    @keyword_params(TRANSFORM_PARAMS)
    def __init__(self, **params: Any) -> None:
        super().__init__()
        self._model_bytes: bytes | None = None
        self._model = None
        self.fitInfo: FitInfo | None = None
        self.setParams(**params)

    @keyword_params(TRANSFORM_PARAMS, returns="KerasModel")
    def setParams(self, **params: Any) -> KerasModel:
        """Sets the transform-time Params by keyword (None leaves one as it is); returns self."""
        return self._set(**{k: v for k, v in params.items() if v is not None})

    # --- the Keras model ----------------------------------------------------------------
    def stateBytes(self) -> bytes | None:
        """The network in Keras's format (:class:`~deepflash.ml.persistence.BinaryState`), or None."""
        return self._model_bytes

    def setStateBytes(self, data: bytes) -> None:
        """Takes a network in Keras's format, deserialized now in Keras's safe mode (no Python code
        stored in the file runs), so a bad or unsafe file fails here, not at transform."""
        model = model_from_bytes(data)
        self._model_bytes, self._model = data, model

    def setKerasModel(self, model) -> KerasModel:
        """Holds the trained ``keras.Model`` ``model`` as this model's network; returns self."""
        self._model_bytes, self._model = model_to_bytes(model), model
        return self

    def _require_model(self) -> bytes:
        if self._model_bytes is None:
            raise ValueError("this KerasModel holds no trained network; get one from KerasEstimator.fit "
                             "or KerasModel.load")
        return self._model_bytes

    def getKerasModel(self):
        """The trained ``keras.Model`` (on the driver)."""
        if self._model is None:
            self._model = model_from_bytes(self._require_model())
        return self._model

    def getHistory(self) -> dict:
        """Per-epoch metrics of the fit: ``{"loss": [...], "val_loss": [...], ...}``."""
        return dict(self.getOrDefault(self.history))

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls, MODEL_FILE)

    def write(self) -> StageWriter:
        return StageWriter(self, MODEL_FILE)

    # --- transform ----------------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        data = self._require_model()
        features_col, pred_col = self.getFeaturesCol(), self.getPredictionCol()
        output_kind = self.getOutputKind()
        classify = output_kind != "regression"
        prob_col = self.getProbabilityCol() if classify else None
        for name, param in ((pred_col, "predictionCol"), (prob_col, "probabilityCol")):
            if name and name in dataset.columns:
                raise ValueError(f"`{param}` == {name!r}: the DataFrame already has a column of that name; "
                                 "set another name or drop it")
        dim = self.getInputDim()
        x = features_as_array(dataset, "featuresCol", features_col)
        # A pandas UDF ships only the feature column to Python, as Arrow batches; every other
        # column stays in the JVM. mapInArrow would need no pandas, but it round-trips every
        # input column through Python: with Fashion-MNIST's Vector column beside the features
        # that took 16.7 s against 3.9 s for this UDF (see the benchmarks page of the docs).
        width = 0 if output_kind == "regression" else 2 if output_kind == "binary" else self._num_outputs()
        out_type = T.StructType([T.StructField("prediction", T.DoubleType())] +
                                [T.StructField(f"p{k}", T.DoubleType()) for k in range(width)])
        _check_plan_size(dataset.sparkSession, data)
        _avoid_columnar_udf_input(dataset)
        predict = F.pandas_udf(batch_predictor(data, model_digest(data), output_kind, dim, width, features_col,
                                               self.kerasBackendValue()), out_type)
        from pyspark.ml.functions import array_to_vector

        scored = dataset.withColumn(_OUT, predict(x))
        out_cols = [F.col(f"`{c}`") for c in dataset.columns] + [F.col(f"{_OUT}.prediction").alias(pred_col)]
        if classify:
            probs = F.array(*[F.col(f"{_OUT}.p{k}") for k in range(width)])
            out_cols.append(array_to_vector(probs).alias(prob_col))
        return scored.select(*out_cols)

    def _num_outputs(self) -> int:
        """Classes of a multiclass model: ``numClasses`` when recorded, else the network's output width."""
        if self.getNumClasses() > 0:
            return self.getNumClasses()
        return int(output_shape(self.getKerasModel())[-1])


# A Connect client sends the UDF, and the model bytes in its closure, inside the plan: one gRPC
# message, which the server refuses above spark.connect.grpc.maxInboundMessageSize (128 MiB by
# default). Models above this size are refused on Connect before any job, with the sizes named.
CONNECT_MODEL_BYTES_LIMIT = 64 * 1024 * 1024
CONNECT_MESSAGE_SIZE_CONF = "spark.connect.grpc.maxInboundMessageSize"


def _check_plan_size(spark, data: bytes) -> None:
    """Raises a ValueError on a Connect session when the model is too big to travel in the plan."""
    if not session.is_connect(spark) or len(data) <= CONNECT_MODEL_BYTES_LIMIT:
        return
    raise ValueError(
        f"the Keras model is {len(data) / 2**20:.1f} MiB and a Spark Connect session sends it inside the "
        f"transform's plan, which is limited to {CONNECT_MODEL_BYTES_LIMIT // 2**20} MiB here (the server "
        f"refuses messages above `{CONNECT_MESSAGE_SIZE_CONF}`, 128 MiB by default); use a classic "
        "SparkSession for this model, or score it with deepflash.serving")


# Spark 4.3 can feed pandas UDFs columnar input (this conf, on by default), but its row-to-columnar
# converter has no case for user-defined types: any query whose UDF input carries a Vector column
# beside it fails at run time with UNSUPPORTED_DATATYPE (seen writing transform's output to Parquet).
COLUMNAR_UDF_INPUT = "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled"


def _avoid_columnar_udf_input(dataset: DataFrame) -> None:
    """Turns Spark 4.3's columnar pandas-UDF input off for this session when ``dataset`` has a
    user-defined-type column (a Vector), logging it once; older Sparks have no such conf."""
    spark = dataset.sparkSession
    if not any(isinstance(f.dataType, T.UserDefinedType) for f in dataset.schema.fields):
        return
    major, minor = (int(x) for x in spark.version.split(".")[:2])
    if (major, minor) < (4, 3):  # the server's Spark has no such conf (asking would log an error there)
        return
    try:
        enabled = str(spark.conf.get(COLUMNAR_UDF_INPUT)).lower() == "true"  # its default, when not set
    except Exception:  # noqa: BLE001  (a build without the conf)
        return
    if not enabled:
        return
    spark.conf.set(COLUMNAR_UDF_INPUT, "false")
    log.info("set %s=false for this session: Spark's columnar UDF input cannot carry the Vector column(s) beside "
             "the features (UNSUPPORTED_DATATYPE)", COLUMNAR_UDF_INPUT)


add_accessors(KerasModel, SHARED_PARAM_NAMES + MODEL_PARAM_NAMES, setters=TRANSFORM_PARAM_NAMES)
