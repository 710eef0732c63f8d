"""deepflash.serving.pyfunc: a fitted digits network (behind a StandardScaler) logged as an MLflow pyfunc
model scores as KerasModel.transform does: loaded in process, and served over REST by a real
`mlflow models serve --env-manager local`."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepflash import KerasEstimator
from deepflash.serving.pyfunc import log_pyfunc, network_input_rows, network_matrix
from helpers import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.both_profiles(reason="the MLflow model loads and scores a Keras 2 or a Keras 3 network")


@pytest.fixture(scope="module")
def fitted(spark, digits, tmp_path_factory):
    """(PipelineModel [StandardScaler, KerasModel], scaled features, transform's predictions and
    probabilities) on the digits test rows."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StandardScaler
    from pyspark.ml.functions import vector_to_array

    train, test = digits
    est = KerasEstimator(featuresCol="scaled", layers=[{"type": "dense", "units": 32, "activation": "relu"}],
                         epochs=3, batchSize=32, seed=3, backend="local",
                         storePath=str(tmp_path_factory.mktemp("serving-store")))
    model = Pipeline(stages=[StandardScaler(inputCol="features", outputCol="scaled"), est]).fit(train)
    rows = (model.transform(test).select(vector_to_array("scaled").alias("x"), "prediction",
                                         vector_to_array("probability").alias("p")).collect())
    x = np.array([r.x for r in rows], np.float64)
    return model, x, np.array([r.prediction for r in rows]), np.array([r.p for r in rows])


@pytest.fixture(scope="module")
def logged(fitted, digits):
    """(run id, ModelInfo, log records) of the network logged as a pyfunc model under a run."""
    import mlflow

    model, _, _, _ = fitted
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("deepflash").addHandler(handler)
    try:
        with mlflow.start_run(run_name="serving-test") as run:
            info = log_pyfunc(model, "network", input_example=network_input_rows(model, digits[1]))
    finally:
        logging.getLogger("deepflash").removeHandler(handler)
    return run.info.run_id, info, records


def test_pyfunc_scores_as_transform_from_a_vector_column_or_numeric_columns(fitted, logged):
    import mlflow

    _, x, prediction, probability = fitted
    run_id, info, _ = logged
    assert len(x) > 300
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/network")
    for request in (pd.DataFrame({"scaled": list(x)}), pd.DataFrame({"scaled": x.tolist()}),
                    pd.DataFrame(x, columns=[f"f{i}" for i in range(64)])):
        got = loaded.predict(request)
        assert list(got.columns) == ["prediction", "probability"] and len(got) == len(x)
        np.testing.assert_array_equal(got["prediction"].to_numpy(), prediction)
        assert isinstance(got["probability"].iloc[0], list) and len(got["probability"].iloc[0]) == 10
        np.testing.assert_allclose(np.array(got["probability"].tolist()), probability, rtol=0, atol=1e-6)
    assert mlflow.models.get_model_info(info.model_uri).run_id == run_id


def test_logged_model_has_a_signature_an_example_honest_requirements_and_says_what_it_scores(logged):
    import mlflow

    run_id, info, records = logged
    assert info.signature.inputs.to_dict() == [{"type": "tensor", "tensor-spec": {"dtype": "float64",
                                                                                   "shape": (-1, 64)}}]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["prediction", "probability"]
    assert "after the Pipeline's feature stages" in info.metadata["description"]
    path = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    example = json.loads((path / "serving_input_example.json").read_text())
    assert np.array(example["inputs"]).shape == (5, 64)
    requirements = (path / "requirements.txt").read_text().split()
    names = sorted(r.split("==")[0] for r in requirements)
    assert names == sorted(["mlflow", "deepflash", "keras", "numpy", "pandas",
                            next(n for n in names if n.startswith("tensorflow"))])
    assert all("==" in r for r in requirements)
    assert (path / "artifacts" / "network.keras").stat().st_size > 10000
    said = [r.getMessage() for r in records]
    assert any("'scaled' vector (64 numbers per row) after the pipeline's StandardScalerModel, not the raw "
               "columns" in m for m in said), said


def test_a_wrong_width_names_what_was_expected_and_found(fitted, logged):
    import mlflow

    _, x, _, _ = fitted
    with pytest.raises(ValueError, match=r"takes 64 features per row: .* found column 'scaled' with rows of "
                                         r"length \[63\]"):
        network_matrix(pd.DataFrame({"scaled": list(x[:3, :63])}), 64)
    with pytest.raises(ValueError, match=r"64 numeric columns; found 2 column\(s\): \['a', 'b'\]"):
        network_matrix(pd.DataFrame({"a": [1.0], "b": [2.0]}), 64)
    with pytest.raises(ValueError, match=r"found non-numeric column\(s\) \['f3'\]"):
        network_matrix(pd.DataFrame(x[:2], columns=[f"f{i}" for i in range(64)]).assign(f3="x"), 64)
    with pytest.raises(ValueError, match=r"found an array of shape \(2, 65\)"):
        network_matrix(np.zeros((2, 65)), 64)
    # Loaded through MLflow, its signature check comes first; it names the expected shape as well.
    loaded = mlflow.pyfunc.load_model(logged[1].model_uri)
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"63 columns and an input shape of \(-1, 64\)"):
        loaded.predict(pd.DataFrame(x[:2, :63], columns=[f"f{i}" for i in range(63)]))


@pytest.mark.slow
def test_mlflow_models_serve_answers_as_transform(fitted, logged, tmp_path):
    _, x, prediction, probability = fitted
    run_id, _, _ = logged
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log_path = tmp_path / "serve.log"
    started = time.time()
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", f"runs:/{run_id}/network",
                                   "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                                  env={**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ['PATH']}"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ping", server, log_path)
        ready = time.time() - started
        answers = {}
        for form, body in (("inputs", {"inputs": x.tolist()}),
                           ("dataframe_split", {"dataframe_split": {"columns": ["scaled"],
                                                                    "data": [[row] for row in x.tolist()]}})):
            request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as r:
                answers[form] = pd.DataFrame(json.loads(r.read())["predictions"])
        bad = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": x[:2, :60].tolist()}).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=60)
        assert refused.value.code == 400 and "(-1, 64)" in refused.value.read().decode()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    for form, got in answers.items():
        np.testing.assert_array_equal(got["prediction"].to_numpy(), prediction, err_msg=form)
        diff = np.abs(np.array(got["probability"].tolist()) - probability).max()
        logging.getLogger("deepflash").info("REST (%s) against transform: max |probability diff| %.2e, "
                                            "server ready in %.1f s", form, diff, ready)
        assert diff <= 1e-6, form
