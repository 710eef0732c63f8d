"""KerasModel: scores a DataFrame on the executors with mapInPandas, Arrow batch by batch."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.ml import Model
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepflash.data.schema import features_as_array
from deepflash.keras_io import cached_model, model_digest, model_from_bytes
from deepflash.params import SHARED_PARAM_NAMES, _KerasModelParams, add_accessors
from deepflash.persistence import KerasStageReader, KerasStageWriter

# Temporary columns carry the features as array<float> into the batches and the probabilities
# back out as array<double>; Spark turns the latter into a Vector, which is far cheaper than
# building Vector objects row by row in Python.
_X, _P = "__deepflash_x", "__deepflash_p"
PREDICT_BATCH = 4096


def _scorer(broadcast, digest: str, output_kind: str, input_dim: int, features_col: str):
    """The mapInPandas function; it deserializes the model once per Python worker process."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = cached_model(broadcast.value, digest)
        for pdf in batches:
            if len(pdf) == 0:
                continue
            x = np.stack(pdf[_X].to_numpy()).astype(np.float32, copy=False)
            if x.ndim != 2 or x.shape[1] != input_dim:
                raise ValueError(f"`featuresCol` column {features_col!r} must hold vectors of length {input_dim} "
                                 f"(the length the model was fitted on), found {x.shape[1:]}")
            out = model.predict_on_batch(x) if len(x) <= PREDICT_BATCH else \
                model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
            out = np.asarray(out, dtype=np.float64)
            pdf = pdf.drop(columns=[_X])
            if output_kind == "multiclass":
                pdf["__pred"] = out.argmax(axis=1).astype(np.float64)
                pdf[_P] = list(out)
            elif output_kind == "binary":
                p1 = out[:, 0]
                pdf["__pred"] = (p1 >= 0.5).astype(np.float64)
                pdf[_P] = list(np.stack([1.0 - p1, p1], axis=1))
            else:
                pdf["__pred"] = out[:, 0]
            yield pdf

    return score


class KerasModel(Model, _KerasModelParams, MLReadable, MLWritable):
    """A fitted Keras network as a Spark ML Model.

    ``transform`` keeps every input column and adds ``predictionCol`` (double) and, for
    classification, ``probabilityCol`` (a Vector of class probabilities). It runs on the executors
    and collects nothing to the driver.
    """

    def __init__(self) -> None:
        super().__init__()
        self._model_bytes: bytes | None = None
        self._model = None
        self.fitInfo: dict = {}

    # --- the Keras model ----------------------------------------------------------------
    def _keras_bytes(self) -> bytes | None:
        return self._model_bytes

    def _set_keras_bytes(self, data: bytes, model=None) -> None:
        self._model_bytes, self._model = data, model

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
    def read(cls):
        return KerasStageReader(cls)

    def write(self):
        return KerasStageWriter(self)

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
        x = features_as_array(dataset, "featuresCol", features_col)

        fields = list(dataset.schema.fields) + [T.StructField("__pred", T.DoubleType(), False)]
        if classify:
            fields.append(T.StructField(_P, T.ArrayType(T.DoubleType(), False)))
        sc = dataset.sparkSession.sparkContext
        bc = sc.broadcast(data)
        score = _scorer(bc, model_digest(data), output_kind, self.getInputDim(), features_col)
        scored = dataset.withColumn(_X, x).mapInPandas(score, T.StructType(fields))
        from pyspark.ml.functions import array_to_vector

        out_cols = [F.col(f"`{c}`") for c in dataset.columns] + [F.col("__pred").alias(pred_col)]
        if classify:
            out_cols.append(array_to_vector(F.col(_P)).alias(prob_col))
        return scored.select(*out_cols)


add_accessors(KerasModel, SHARED_PARAM_NAMES + ["outputKind", "numClasses", "inputDim"])
