"""A fitted network as an MLflow ``pyfunc`` model, served without Spark or a JVM
(``mlflow models serve``, Databricks Model Serving).

The pyfunc model scores the network's input: the features vector after the Pipeline's feature
stages (a VectorAssembler's or StandardScaler's output), not the raw columns before them. It
scores as ``KerasModel.transform`` does, through the same :mod:`deepflash.serving.scoring` functions, so
both give the same ``prediction`` (and ``probability``) for the same features.

Example:
    >>> from deepflash.serving.pyfunc import log_pyfunc, network_input_rows
    >>> with mlflow.start_run():
    ...     info = log_pyfunc(pipeline_model, input_example=network_input_rows(pipeline_model, test_df))
    >>> mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame({"features": rows}))
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import tempfile
import time
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from deepflash.serving.scoring import network_outputs, predict_batch_rows, score_outputs

log = logging.getLogger("deepflash")

NETWORK_ARTIFACT = "network"
DESCRIPTION = ("deepflash network: scores the network's input, the features vector after the Pipeline's "
               "feature stages (e.g. VectorAssembler, StandardScaler), not the raw columns. Input: one column "
               "holding a vector of input_dim numbers per row, or input_dim float64 columns. Output: "
               "prediction, and probability (a list per row) for classification, as KerasModel.transform.")


class KerasNetworkModel(mlflow.pyfunc.PythonModel):
    """deepflash's network as a pyfunc model: the features vector after the Pipeline's feature
    stages in, ``prediction`` (and ``probability``, a list per row, for classification) out.

    ``load_context`` loads the ``.keras`` artifact ``network``; ``predict`` takes a pandas
    DataFrame with one column holding a vector of ``input_dim`` numbers per row, or ``input_dim``
    numeric columns (or a ``(rows, input_dim)`` array), and scores it by ``predict_on_batch`` on
    chunks of rows, never ``model.predict`` per request. Its settings (``output_kind``,
    ``num_classes``, ``input_dim``) come from the model's ``model_config``. Log one with
    :func:`log_pyfunc`.
    """

    def load_context(self, context) -> None:
        from deepflash.io.keras_files import model_from_bytes
        from deepflash.worker.devices import configure_tensorflow

        configure_tensorflow()
        config = context.model_config
        self.output_kind = str(config["output_kind"])
        self.num_classes = int(config["num_classes"])
        self.input_dim = int(config["input_dim"])
        with open(context.artifacts[NETWORK_ARTIFACT], "rb") as f:
            self.network = model_from_bytes(f.read())
        self.rows_per_call = predict_batch_rows(self.network)

    # MLflow hands over the (rows, input_dim) array its signature check made; called directly,
    # predict takes a DataFrame as well. A hint MLflow infers no schema from also keeps it from
    # warning, on every import, that predict has none.
    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> pd.DataFrame:
        x = network_matrix(model_input, self.input_dim)
        prediction, probability = score_outputs(network_outputs(self.network, x, self.rows_per_call),
                                                self.output_kind, self.num_classes)
        frame = pd.DataFrame({"prediction": prediction})
        if probability is not None:
            frame["probability"] = probability.tolist()
        return frame


def network_matrix(data, input_dim: int) -> np.ndarray:
    """The network's ``(rows, input_dim)`` float32 input from ``data``.

    ``data`` is a pandas DataFrame with one column holding a list or array of ``input_dim``
    numbers per row, or with ``input_dim`` numeric columns (in the order of the features vector),
    or a ``(rows, input_dim)`` array. Anything else raises a ValueError naming what was expected
    and what was found.

    Example:
        >>> network_matrix(pd.DataFrame({"features": [[0.0] * 64, [1.0] * 64]}), 64).shape
        (2, 64)
    """
    expected = (f"the network takes {input_dim} features per row: a DataFrame with one column holding a "
                f"vector of {input_dim} numbers per row, or {input_dim} numeric columns")
    if isinstance(data, np.ndarray):
        if data.ndim == 2 and data.shape[1] == input_dim and data.dtype != object:
            return data.astype(np.float32, copy=False)
        if data.ndim == 1 and data.dtype == object:
            data = pd.DataFrame({"features": data})
        else:
            raise ValueError(f"{expected}; found an array of shape {data.shape}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"{expected}; found a {type(data).__name__}")
    if data.shape[1] == 1 and pd.api.types.is_object_dtype(data.dtypes.iloc[0]):
        return _vector_column(data.iloc[:, 0], input_dim, expected)
    names = [str(c) for c in data.columns]
    shown = names if len(names) <= 8 else names[:8] + [f"... ({len(names)} in all)"]
    if data.shape[1] != input_dim:
        raise ValueError(f"{expected}; found {data.shape[1]} column(s): {shown}")
    wrong = [str(c) for c, t in data.dtypes.items() if not (pd.api.types.is_numeric_dtype(t)
                                                            and not pd.api.types.is_bool_dtype(t))]
    if wrong:
        raise ValueError(f"{expected}; found non-numeric column(s) {wrong[:8]}")
    return data.to_numpy(np.float32)


def _vector_column(values: pd.Series, input_dim: int, expected: str) -> np.ndarray:
    """One column of lists or arrays as a float32 matrix, by one concatenation (no loop per row)."""
    n = len(values)
    if n == 0:
        return np.zeros((0, input_dim), np.float32)
    try:
        flat = np.concatenate(values.to_numpy()).astype(np.float32)
    except (TypeError, ValueError):  # a null row, or one that is not numbers
        flat = None
    if flat is None or flat.size != n * input_dim:
        lengths = sorted({-1 if v is None or np.ndim(v) == 0 else np.size(v) for v in values.to_numpy()}
                         - {input_dim})
        raise ValueError(f"{expected}; found column {str(values.name)!r} with rows of length {lengths} "
                         "(-1: null or not a vector)")
    return flat.reshape(n, input_dim)


def network_requirements(deepflash: str | None = None) -> list[str]:
    """The pip requirements of the served network, pinned to this environment: deepflash itself,
    TensorFlow and Keras (a ``.keras`` file loads only under the Keras major it was saved with),
    NumPy and pandas. MLflow adds its own pin.

    Args:
        deepflash: deepflash's requirement instead of its pinned version, e.g. the path or URL of
            its wheel for a serving environment that installs the requirements itself.
    """
    names = sorted(d for d in importlib.metadata.packages_distributions().get("tensorflow", [])
                   if d.lower().startswith("tensorflow"))[:1] or ["tensorflow"]
    names += ["keras", "numpy", "pandas"]
    pinned = [f"{re.sub(r'[-_.]+', '-', name).lower()}=={importlib.metadata.version(name)}" for name in names]
    return [deepflash or f"deepflash=={importlib.metadata.version('deepflash')}"] + pinned


def _network_stage(model):
    """(the KerasModel, the stages before it) of a KerasModel or a PipelineModel ending in one."""
    from deepflash.ml.model import KerasModel

    stages = list(getattr(model, "stages", None) or [model])
    if not isinstance(stages[-1], KerasModel):
        raise TypeError(f"expected a fitted KerasModel or a PipelineModel whose last stage is one; "
                        f"found {type(stages[-1]).__name__}")
    return stages[-1], stages[:-1]


def network_input_rows(model, df, limit: int = 5) -> np.ndarray:
    """The first ``limit`` rows of the Spark DataFrame ``df`` as the network takes them: through
    ``model``'s feature stages (a PipelineModel's stages before its KerasModel), as a
    ``(rows, input_dim)`` float64 array. An input example for :func:`log_pyfunc`."""
    from pyspark.ml import PipelineModel

    from deepflash.data.schema import features_as_array

    keras_model, before = _network_stage(model)
    features = PipelineModel(before).transform(df.limit(limit))
    col = features_as_array(features, "featuresCol", keras_model.getFeaturesCol())
    rows = [r[0] for r in features.select(col.cast("array<double>")).collect()]
    return np.asarray(rows, np.float64).reshape(len(rows), keras_model.getInputDim())


def log_pyfunc(model, name: str = "network", input_example=None, *, registered_model_name: str | None = None,
               pip_requirements: list[str] | None = None,
               extra_pip_requirements: list[str] | None = None) -> mlflow.models.model.ModelInfo:
    """Logs ``model``'s network as an MLflow pyfunc model (:class:`KerasNetworkModel`) named
    ``name``, under the active run if there is one, and returns its ``ModelInfo``.

    The model scores the network's input, the features vector after the Pipeline's feature
    stages; for a PipelineModel with such stages a log line says so. Its signature is a
    ``(-1, input_dim)`` float64 tensor in, ``prediction`` (and ``probability``) out. Requests
    are a DataFrame with one column of vectors or ``input_dim`` float64 columns, or
    ``{"inputs": [[...], ...]}`` over REST.

    Args:
        model: a fitted KerasModel, or a PipelineModel whose last stage is one.
        name: the logged model's name (``runs:/<run id>/<name>``).
        input_example: a few rows of the network's input (see :func:`network_input_rows`); the
            width is checked here.
        registered_model_name: also register it under this name.
        pip_requirements: replaces :func:`network_requirements`, e.g.
            ``network_requirements(deepflash="/dbfs/wheels/deepflash-0.1.0-py3-none-any.whl")`` for
            a serving environment that installs the requirements itself.
        extra_pip_requirements: added to :func:`network_requirements`.

    Example:
        >>> with mlflow.start_run():
        ...     info = log_pyfunc(pipeline_model, input_example=network_input_rows(pipeline_model, df))
        >>> # mlflow models serve -m runs:/<run id>/network --env-manager local
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema, TensorSpec

    from deepflash.io.keras_files import model_to_bytes

    keras_model, before = _network_stage(model)
    dim, kind = keras_model.getInputDim(), keras_model.getOutputKind()
    if before:
        log.info("the pyfunc model %r takes the network's input: the %r vector (%d numbers per row) after the "
                 "pipeline's %s, not the raw columns; send that assembled/scaled feature vector", name,
                 keras_model.getFeaturesCol(), dim, ", ".join(type(s).__name__ for s in before))
    if hasattr(input_example, "toPandas"):
        raise TypeError("`input_example` is a Spark DataFrame; pass the network's input rows, e.g. "
                        "network_input_rows(model, df)")
    if input_example is not None:
        input_example = network_matrix(input_example, dim).astype(np.float64)
    outputs = [ColSpec("double", "prediction")]
    if kind != "regression":
        outputs.append(ColSpec(Array("double"), "probability"))
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float64), (-1, dim))]),
                               outputs=Schema(outputs))
    requirements = pip_requirements if pip_requirements is not None else (
        network_requirements() + list(extra_pip_requirements or []))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="deepflash-serving-") as d:
        path = os.path.join(d, "network.keras")
        with open(path, "wb") as f:
            f.write(model_to_bytes(keras_model.getKerasModel()))
        info = mlflow.pyfunc.log_model(
            name=name, python_model=KerasNetworkModel(), artifacts={NETWORK_ARTIFACT: path},
            model_config={"output_kind": kind, "num_classes": keras_model.getNumClasses(), "input_dim": dim},
            signature=signature, input_example=input_example, pip_requirements=requirements,
            registered_model_name=registered_model_name,
            metadata={"description": DESCRIPTION, "features_col": keras_model.getFeaturesCol()})
    log.info("logged the network as pyfunc model %r (%s) in %.1fs", name, info.model_uri, time.time() - started)
    return info
