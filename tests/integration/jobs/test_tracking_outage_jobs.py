"""A real `mlflow server` stopped while a job runs: `deepflash train` and `deepflash tune` keep
their outputs (the model, metrics.json with `tracking_error`, the trials table) and end with
TrackingFailedError, which names where the outputs are."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepflash.jobs import train as train_job
from deepflash.jobs import tune as tune_job
from deepflash.jobs.base import TrackingFailedError
from deepflash.jobs.config import validate
from helpers import free_port, wait_for_http

mlflow = pytest.importorskip("mlflow")

pytestmark = [pytest.mark.slow,
              pytest.mark.one_profile(reason="the jobs' tracking order and MLflow's client are the same on both "
                                             "profiles; tests/unit/jobs/test_tracking_outage.py runs on both")]


class Server:
    """An `mlflow server` in its own process group, stopped by :meth:`stop` (its group, by its pid)."""

    def __init__(self, root: Path):
        root.mkdir()
        self.root, port = root, free_port()
        self.log = open(root / "server.log", "w")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                                      "--port", str(port), "--backend-store-uri", f"sqlite:///{root}/server.db",
                                      "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> Server:
        try:
            wait_for_http(f"{self.url}/health", self.proc, self.root / "server.log")
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server per test (each test stops its own), started side by side: a server takes seconds to start."""
    root = tmp_path_factory.mktemp("mlflow-servers")
    started = [Server(root / name) for name in ("train", "tune")]
    yield {name: s.wait() for name, s in zip(("train", "tune"), started, strict=True)}
    for s in started:
        s.stop()


@pytest.fixture()
def client_without_retries(monkeypatch):
    """MLflow's client without retries, so the first refused call fails at once; the suite's own
    tracking store is restored afterwards."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)
    mlflow.set_experiment(experiment_id="0")  # the jobs made the server's experiment the active one


@pytest.fixture()
def warnings():
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("deepflash").addHandler(handler)
    yield records
    logging.getLogger("deepflash").removeHandler(handler)


def config(server_url: str, store: Path, **sections) -> dict:
    return validate({"data": {"source": "digits", "seed": 7, "limit": 300},
                     "model": {"layers": "simple", "backend": "local", "numProc": 1, "epochs": 1, "batchSize": 32,
                               "seed": 1, "storePath": str(store)},
                     "tracking": {"uri": server_url, "experiment": "deepflash-outage"}, **sections})


def assert_outputs_kept(out: Path, raised: pytest.ExceptionInfo, during: str, warnings: list) -> dict:
    from pyspark.ml import PipelineModel

    assert str(raised.value).startswith(f"the outputs are in place at {out}, but tracking to MLflow failed")
    assert (out / "model" / "metadata").is_dir() and (out / "report.html").stat().st_size > 1000
    PipelineModel.load(str(out / "model"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["tracking_error"]["during"] == during and saved["tracking_error"]["type"] == "MlflowException"
    assert not list(out.parent.glob(f"{out.name}.tmp-*")), "a temporary output directory was left behind"
    assert mlflow.active_run() is None
    tracking_warnings = [r for r in warnings if "MLflow tracking failed" in r.getMessage()]
    assert len(tracking_warnings) == 1, [r.getMessage() for r in warnings]
    return saved


def test_train_keeps_its_outputs_when_the_server_stops_after_the_run_started(spark, servers, client_without_retries,
                                                                            tmp_path, monkeypatch, warnings):
    server = servers["train"]
    real_load_data = train_job.load_data

    runs_when_stopped = []

    def stop_server_then_load(*args, **kwargs):
        runs_when_stopped.append(mlflow.active_run())
        server.stop()
        return real_load_data(*args, **kwargs)

    monkeypatch.setattr(train_job, "load_data", stop_server_then_load)
    out = tmp_path / "train"
    with pytest.raises(TrackingFailedError) as raised:
        train_job.run(config(server.url, tmp_path / "store"), str(out))
    saved = assert_outputs_kept(out, raised, "log_history", warnings)
    assert runs_when_stopped[0] is not None, "the server should stop while the job's run is open"
    assert saved["metrics"]["epochs_run"] == 1 and raised.value.result["test"] == saved["metrics"]["test"]
    assert (out / "plots" / "learning_curves.png").is_file() and not (out / "run.json").exists()


def test_tune_keeps_the_best_model_and_trials_when_the_server_stops_mid_search(spark, servers, client_without_retries,
                                                                              tmp_path, monkeypatch, warnings):
    from deepflash.tuning.progress import Progress

    server, real_report = servers["tune"], Progress.report

    def stop_server_then_report(self, result):
        server.stop()  # after the search's parent run started, before its first trial is logged
        real_report(self, result)

    monkeypatch.setattr(Progress, "report", stop_server_then_report)
    out = tmp_path / "tune"
    settings = config(server.url, tmp_path / "store",
                      search={"algo": "random", "maxEvals": 1, "parallelism": 1, "metric": "val_accuracy",
                              "mode": "max", "space": {"learningRate": {"loguniform": [1e-3, 3e-2]}}})
    with pytest.raises(TrackingFailedError) as raised:
        tune_job.run(settings, str(out))
    assert_outputs_kept(out, raised, "log_trial", warnings)
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 1 and (trials["status"] == "ok").all()
