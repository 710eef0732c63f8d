"""deepflash.reporting.tracking against a real `mlflow server` (SQLite backend) on 127.0.0.1."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import free_port, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root}/server.db",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", proc, root / "server.log")
    except AssertionError:
        proc.kill()
        raise
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
    log.close()


def test_a_run_logged_to_the_server_reads_back_through_the_client(mlflow_server, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from deepflash.reporting import plots
    from deepflash.reporting.tracking import RunTracker, configure

    previous = mlflow.get_tracking_uri()
    try:
        uri, experiment_id = configure(mlflow_server, "deepflash-server-test", str(tmp_path))
        assert uri == mlflow_server
        history = {"loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.8, 0.9],
                   "val_accuracy": [0.4, 0.7, 0.8]}
        png = plots.learning_curves(history, str(tmp_path / "curves.png"))
        with RunTracker("server-run", {"optimizer": "adam", "layers": [{"type": "dense", "units": 8}]},
                        tags={"deepflash.job": "test"}) as run:
            run.log_history(history)
            run.log_metrics({"test": {"accuracy": 0.83}, "fit_seconds": 12.5})
            run.log_files([png], "plots")
            run_id = run.run_id
    finally:
        mlflow.set_tracking_uri(previous)
        # configure() made the server's experiment the active one; later tests log to the local store's default.
        mlflow.set_experiment(experiment_id="0")

    client = MlflowClient(tracking_uri=mlflow_server)
    got = client.get_run(run_id)
    assert got.info.experiment_id == experiment_id and got.info.status == "FINISHED"
    assert got.data.params["optimizer"] == "adam"
    assert got.data.params["layers"] == '[{"type": "dense", "units": 8}]'
    assert got.data.metrics["test.accuracy"] == pytest.approx(0.83)
    assert [m.value for m in client.get_metric_history(run_id, "val_loss")] == [1.1, 0.7, 0.6]
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2]
    assert got.data.tags["deepflash.job"] == "test"
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/curves.png"]
    local = client.download_artifacts(run_id, "history.json", str(tmp_path))
    assert Path(local).read_text().count("val_accuracy") == 1
