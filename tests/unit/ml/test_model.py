"""KerasModel without Spark: the Connect plan-size check, the per-worker model cache, its state as
bytes, its fit info, and the scoring path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepflash import KerasModel
from deepflash.ml.model import batch_predictor
from deepflash.serving.scoring import feature_matrix, predict_batch_rows
from deepflash.worker.devices import choose_gpus


class _ConnectLike:
    """Stands in for a Spark Connect session: deepflash tells the kinds apart by the class's module."""


_ConnectLike.__module__ = "pyspark.sql.connect.session"


def test_connect_refuses_a_model_too_big_for_the_plan_naming_sizes_and_setting(monkeypatch):
    from deepflash.ml import model as model_module

    monkeypatch.setattr(model_module, "CONNECT_MODEL_BYTES_LIMIT", 1024)
    with pytest.raises(ValueError, match=r"the Keras model is 0\.0 MiB .* limited to 0 MiB .*"
                                         r"`spark\.connect\.grpc\.maxInboundMessageSize`"):
        model_module._check_plan_size(_ConnectLike(), b"x" * 2048)
    model_module._check_plan_size(_ConnectLike(), b"x" * 1024)  # at the limit: fine
    model_module._check_plan_size(object(), b"x" * 2048)  # classic: Spark broadcasts a big closure itself


def test_a_worker_deserializes_a_model_once_per_digest(monkeypatch):
    from deepflash.io import keras_files

    loads = []
    monkeypatch.setattr(keras_files, "_LOADED", {})
    monkeypatch.setattr(keras_files, "model_from_bytes", lambda data: loads.append(data) or ("net", data))
    assert keras_files.cached_model(b"a", "da") == ("net", b"a")
    assert keras_files.cached_model(b"a", "da") == ("net", b"a")
    assert loads == [b"a"]
    keras_files.cached_model(b"b", "db")
    assert loads == [b"a", b"b"] and list(keras_files._LOADED) == ["db"]  # one model held at a time


# --- the scoring path, without Spark --------------------------------------------------------


def test_feature_batch_becomes_one_matrix_and_bad_rows_are_named():
    rows = [np.arange(3, dtype=np.float32) + i for i in range(4)]
    x = feature_matrix(pd.Series(rows), 3, "features")
    assert x.shape == (4, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.stack(rows))
    assert feature_matrix(pd.Series([], dtype=object), 3, "features").shape == (0, 3)
    with pytest.raises(ValueError, match=r"`featuresCol` column 'features' must hold vectors of length 3 .* \[2\]"):
        feature_matrix(pd.Series([np.zeros(3), np.zeros(2)]), 3, "features")
    with pytest.raises(ValueError, match=r"length 3 .*\[-1\] \(-1: null\)"):
        feature_matrix(pd.Series([np.zeros(3), None]), 3, "features")


def test_predict_batches_are_sized_by_the_model():
    import tensorflow as tf

    small = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    wide = tf.keras.Sequential([tf.keras.Input((784,)), tf.keras.layers.Dense(4096), tf.keras.layers.Dense(10)])
    assert predict_batch_rows(small) == 16384  # capped
    assert predict_batch_rows(wide) == (8 << 20) // (4 * (784 + 4096 + 10))
    assert predict_batch_rows(wide) < predict_batch_rows(small)


@pytest.mark.parametrize("kind,units,activation", [("multiclass", 3, "softmax"), ("binary", 1, "sigmoid"),
                                                   ("regression", 1, None)])
def test_scoring_function_equals_model_predict(kind, units, activation):
    import tensorflow as tf

    from deepflash.io.keras_files import model_digest, model_to_bytes

    tf.keras.utils.set_random_seed(0)
    net = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(units, activation=activation)])
    data = model_to_bytes(net)
    x = np.random.default_rng(0).normal(size=(700, 5)).astype(np.float32)
    width = {"multiclass": 3, "binary": 2, "regression": 0}[kind]
    fn = batch_predictor(data, model_digest(data), kind, 5, width, "features")
    out = pd.concat(list(fn(iter([pd.Series(list(x[:400])), pd.Series(list(x[400:]))]))), ignore_index=True)
    expected = net.predict(x, verbose=0).astype(np.float64)
    assert list(out.columns) == ["prediction"] + [f"p{k}" for k in range(width)]
    if kind == "multiclass":
        np.testing.assert_allclose(out[["p0", "p1", "p2"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["prediction"].to_numpy(), expected.argmax(axis=1))
    elif kind == "binary":
        np.testing.assert_allclose(out["p1"].to_numpy(), expected[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["p0"] + out["p1"], 1.0)
        np.testing.assert_array_equal(out["prediction"].to_numpy(), (expected[:, 0] >= 0.5).astype(float))
    else:
        np.testing.assert_allclose(out["prediction"].to_numpy(), expected[:, 0], rtol=1e-5, atol=1e-6)


def test_gpus_come_from_the_task_resources_else_the_local_rank():
    assert choose_gpus(0, ["0"], 1) == []  # no GPU visible: CPU
    assert choose_gpus(4, ["2"], 0) == [2]  # Spark's address wins over the rank
    assert choose_gpus(4, ["1", "3"], 0) == [1, 3]
    assert choose_gpus(2, [], 3) == [1]  # no task resources: local rank modulo GPUs
    with pytest.raises(ValueError, match=r"GPU address '5', but this process sees 2 GPU"):
        choose_gpus(2, ["5"], 0)


# --- state bytes and fit info ---------------------------------------------------------------

def test_stages_with_state_are_binary_state_and_take_back_their_bytes():
    import tensorflow as tf

    from deepflash import KerasEstimator, RANEstimator, RANModel
    from deepflash.ml.persistence import BinaryState

    for cls in (KerasEstimator, KerasModel, RANModel):
        assert isinstance(cls(), BinaryState), cls.__name__
    assert not isinstance(RANEstimator(), BinaryState)  # its Params are all it has
    assert KerasModel().stateBytes() is None and KerasEstimator().stateBytes() is None

    net = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, activation="softmax")])
    model = KerasModel().setKerasModel(net)
    data = model.stateBytes()
    loaded = KerasModel()
    loaded.setStateBytes(data)
    assert loaded.stateBytes() == data
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(loaded.getKerasModel().predict(x, verbose=0), net.predict(x, verbose=0))
    with pytest.raises((OSError, ValueError)):  # decoded at once: a bad file fails at load, not at transform
        KerasModel().setStateBytes(b"not a keras file")


def test_fit_info_is_typed_and_keeps_item_access():
    from deepflash.ml.fit_info import FitData, FitInfo

    data = FitData(train_url="file:/t", val_url="file:/v", reused=True)
    info = FitInfo(run_id="r", data=data, read_seconds=1.0, fit_seconds=2.0, initial_epoch=0, seconds=4.0)
    assert info.data.train_url == "file:/t" and info.data.seconds == 0.0
    assert info["run_id"] == "r" and info["data"]["reused"] is True  # scripts that indexed the dict still run
    with pytest.raises(KeyError):
        info["no_such_field"]
    with pytest.raises(KeyError):
        data["as_dict"]  # only fields are items
    assert info.replace(plan_seconds=1.5).plan_seconds == 1.5 and info.plan_seconds == 0.0
    assert info.as_dict()["data"] == {"train_url": "file:/t", "val_url": "file:/v", "reused": True, "seconds": 0.0,
                                      "bytes": 0}
    assert KerasModel().fitInfo is None  # a model loaded from disk has none


def test_fit_info_keeps_its_old_import_path():
    from deepflash.ml.fit_info import FitInfo
    from deepflash.plan import FitInfo as OldFitInfo

    assert OldFitInfo is FitInfo
