"""deepflash.serving.pyfunc without Spark: the pyfunc model's input forms and its outputs for every output
kind, against the scoring function KerasModel.transform runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepflash.serving.pyfunc import KerasNetworkModel, network_matrix, network_requirements

KINDS = [("multiclass", 3, "softmax", 3), ("binary", 1, "sigmoid", 2), ("regression", 1, None, 0)]


def _serving_model(tmp_path, net, kind: str, num_classes: int) -> KerasNetworkModel:
    from mlflow.pyfunc import PythonModelContext

    from deepflash.io.keras_files import model_to_bytes

    path = tmp_path / "network.keras"
    path.write_bytes(model_to_bytes(net))
    served = KerasNetworkModel()
    served.load_context(PythonModelContext(artifacts={"network": str(path)}, model_config={
        "output_kind": kind, "num_classes": num_classes, "input_dim": 5}))
    return served


@pytest.mark.parametrize("kind,units,activation,width", KINDS)
def test_pyfunc_outputs_equal_the_transform_scoring_function(tmp_path, kind, units, activation, width):
    import tensorflow as tf

    from deepflash.io.keras_files import model_digest, model_to_bytes
    from deepflash.ml.model import batch_predictor

    tf.keras.utils.set_random_seed(0)
    net = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(units, activation=activation)])
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    served = _serving_model(tmp_path, net, kind, width if kind == "multiclass" else 0)
    got = served.predict(None, pd.DataFrame({"features": list(x)}))

    data = model_to_bytes(net)
    spark_side = next(batch_predictor(data, model_digest(data), kind, 5, width, "features")(
        iter([pd.Series(list(x))])))
    np.testing.assert_array_equal(got["prediction"].to_numpy(), spark_side["prediction"].to_numpy())
    if kind == "regression":
        assert list(got.columns) == ["prediction"]
    else:
        assert list(got.columns) == ["prediction", "probability"] and len(got["probability"][0]) == width
        np.testing.assert_array_equal(np.array(got["probability"].tolist()),
                                      spark_side[[f"p{k}" for k in range(width)]].to_numpy())
    empty = served.predict(None, np.zeros((0, 5)))
    assert len(empty) == 0 and "prediction" in empty


def test_network_matrix_takes_a_vector_column_numeric_columns_or_an_array():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    for data in (pd.DataFrame({"v": list(x)}), pd.DataFrame({"v": x.tolist()}), pd.DataFrame(x.astype(int)), x):
        got = network_matrix(data, 4)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x)
    with pytest.raises(ValueError, match=r"found column 'v' with rows of length \[-1, 3\]"):
        network_matrix(pd.DataFrame({"v": [x[0], x[1, :3], None]}), 4)
    with pytest.raises(ValueError, match=r"found 12 column\(s\): \[.*'7', '\.\.\. \(12 in all\)'\]"):
        network_matrix(pd.DataFrame(np.zeros((1, 12))), 4)
    with pytest.raises(ValueError, match=r"takes 4 features per row: .*; found a list"):
        network_matrix([[1, 2, 3, 4]], 4)


def test_requirements_pin_deepflash_tensorflow_keras_numpy_pandas():
    names = [r.split("==")[0] for r in network_requirements()]
    assert names[0] == "deepflash" and names[1].startswith("tensorflow") and names[2:] == ["keras", "numpy", "pandas"]
    assert network_requirements(deepflash="/wheels/deepflash-0.1.0-py3-none-any.whl")[0].endswith(".whl")
