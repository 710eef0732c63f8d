"""Keras 3 on PyTorch and JAX under a TensorFlow driver: data-parallel barrier training, exact
resume, a local fit in a child process, and models that score the same on either framework."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.functions import vector_to_array

from deepflash import KerasEstimator
from deepflash.networks.keras_compat import keras_major

pytestmark = [
    pytest.mark.slow,
    pytest.mark.one_profile(profile="modern", reason="Keras 3 runs on PyTorch; Keras 2 trains on TensorFlow only"),
    pytest.mark.skipif(keras_major() == 2, reason="Keras 2 trains on TensorFlow only"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("jax") is None,
                       reason="PyTorch or JAX is not installed"),
]
FRAMEWORKS = ["torch", "jax"]

LAYERS = [{"type": "dense", "units": 64, "activation": "relu"}]
# The plateau callback and early stopping are on, so that resuming restores their state too.
PIPELINE = dict(backend="barrier", numProc=2, layers=LAYERS, learningRate=0.01, batchSize=32, epochs=12, seed=5,
                reduceLrPatience=2, earlyStoppingPatience=4)


def accuracy(df) -> float:
    rows = df.select("label", "prediction").collect()
    return sum(r["label"] == r["prediction"] for r in rows) / len(rows)


def probabilities(df) -> np.ndarray:
    return np.array([r["p"] for r in df.select(vector_to_array("probability").alias("p")).collect()])


def features(df) -> np.ndarray:
    return np.array([r["f"] for r in df.select(vector_to_array("features").alias("f")).collect()], np.float32)


def predict_in(backend: str, model_path: str, x: np.ndarray, tmp_path) -> np.ndarray:
    """``model.predict`` of the ``.keras`` file in a fresh Python whose Keras runs on ``backend``."""
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, keras; assert keras.backend.backend() == sys.argv[1], keras.backend.backend();"
            "m = keras.models.load_model(sys.argv[2]);"
            "np.save(sys.argv[4], m.predict(np.load(sys.argv[3]), verbose=0))")
    out = tmp_path / f"p-{backend}.npy"
    subprocess.run([sys.executable, "-c", code, backend, model_path, str(tmp_path / "x.npy"), str(out)], check=True,
                   env={**os.environ, "KERAS_BACKEND": backend}, timeout=120)
    return np.load(out)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def pipeline(request, digits, tmp_path_factory):
    """The digits Pipeline fitted by 2 barrier processes on ``request.param``."""
    train, _ = digits
    est = KerasEstimator(storePath=str(tmp_path_factory.mktemp("store")), kerasBackend=request.param, **PIPELINE)
    return request.param, Pipeline(stages=[est]).fit(train)


def test_two_processes_reach_095_on_held_out_digits(pipeline, digits):
    _, test = digits
    framework, fitted = pipeline
    model = fitted.stages[-1]
    assert model.fitInfo.keras_backend == framework
    assert accuracy(fitted.transform(test)) >= 0.95
    history = model.getHistory()
    assert len(history["loss"]) == 12 and history["loss"][-1] < history["loss"][0]
    rows = model.fitInfo.rows_read_per_rank
    assert len(rows) == 2 and all(r > 0 for r in rows), rows
    assert len(model.fitInfo.epoch_seconds) == 12 and all(s > 0 for s in model.fitInfo.epoch_seconds)
    allreduce = model.fitInfo.allreduce
    if framework == "torch":   # the PyTorch route times its one flat all-reduce per step; JAX's is inside its step
        assert allreduce.steps > 0 and allreduce.steps % 12 == 0, allreduce
        assert allreduce.bytes_per_step == 4 * model.getKerasModel().count_params()
        assert 0 < allreduce.seconds_per_step < 1
    else:
        assert allreduce is None


def test_a_model_scores_the_same_on_tensorflow_and_on_the_framework_it_trained_on(pipeline, digits, tmp_path):
    """Trained on PyTorch (or JAX), scored by this TensorFlow driver's transform: the same
    probabilities as that framework's own predict on the saved .keras file."""
    _, test = digits
    framework, fitted = pipeline
    model = fitted.stages[-1]
    path = str(tmp_path / "model.keras")
    model.getKerasModel().save(path)
    on_tensorflow = probabilities(model.transform(test))
    on_framework = predict_in(framework, path, features(test), tmp_path)
    np.testing.assert_allclose(on_tensorflow, on_framework, rtol=1e-4, atol=1e-6)


def test_a_tensorflow_model_scores_the_same_on_torch_and_jax(digits, tmp_path):
    """The reverse: a network trained on TensorFlow predicts the same on PyTorch and on JAX."""
    train, test = digits
    model = KerasEstimator(layers=LAYERS, epochs=3, seed=1, backend="local", storePath=str(tmp_path / "s")).fit(train)
    assert model.fitInfo.keras_backend == "tensorflow"
    path = str(tmp_path / "model.keras")
    model.getKerasModel().save(path)
    on_tensorflow, x = probabilities(model.transform(test)), features(test)
    for framework in FRAMEWORKS:
        np.testing.assert_allclose(on_tensorflow, predict_in(framework, path, x, tmp_path), rtol=1e-4, atol=1e-6,
                                   err_msg=framework)


def test_a_local_torch_fit_under_a_tensorflow_driver_trains_in_a_child_process(digits, tmp_path):
    train, test = digits
    est = KerasEstimator(layers=LAYERS, learningRate=0.01, epochs=6, seed=2, backend="local", kerasBackend="torch",
                         storePath=str(tmp_path))
    model = est.fit(train)
    assert model.fitInfo.keras_backend == "torch"
    assert accuracy(model.transform(test)) >= 0.9


def test_resume_is_exact(pipeline, digits, tmp_path):
    """6 epochs, then the same runId for 12: bitwise the history and weights of the 12 in one go
    (the pipeline's fit)."""
    framework, fitted = pipeline
    train, _ = digits
    reference = fitted.stages[-1]
    params = {**PIPELINE, "kerasBackend": framework, "storePath": str(tmp_path), "runId": "resumed"}
    KerasEstimator(**{**params, "epochs": 6}).fit(train)
    resumed = KerasEstimator(**params).fit(train)
    assert resumed.fitInfo["initial_epoch"] == 6 and resumed.fitInfo.keras_backend == framework
    a, b = resumed.getHistory(), reference.getHistory()
    assert sorted(a) == sorted(b) and len(a["loss"]) == 12
    for key in a:
        np.testing.assert_array_equal(np.array(a[key]), np.array(b[key]), err_msg=key)
    for x, y in zip(resumed.getKerasModel().get_weights(), reference.getKerasModel().get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
