"""A tracking outage never costs a job its outputs: trackers that turn themselves off after the first
failed MLflow call, ``settle_tracking`` recording ``tracking_error`` in the job's JSON document, and
``deepflash`` exiting 3 on it (no Spark here; MLflow on the tests' throwaway SQLite store)."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402

from deepflash.jobs import main as jobs_main  # noqa: E402
from deepflash.jobs.base import TrackingFailedError  # noqa: E402
from deepflash.jobs.outputs import Tracking, settle_tracking, start_tracking  # noqa: E402
from deepflash.reporting.tracking import RunTracker, SearchTracker, TrackingFailure  # noqa: E402
from deepflash.tuning.trial import TrialResult, TrialStatus  # noqa: E402
from helpers import free_port  # noqa: E402


@pytest.fixture()
def warnings():
    """The WARNING records of the ``deepflash`` logger (a handler of its own: jobs.main may have
    stopped it propagating)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("deepflash")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def refused(*args, **kwargs):
    raise MlflowException("API request to http://127.0.0.1:1/api failed: Max retries exceeded")


def test_a_run_tracker_turns_itself_off_after_the_first_failure_and_closes_its_run(monkeypatch, warnings):
    with RunTracker("outage", {"epochs": 1}) as run:
        monkeypatch.setattr(mlflow, "log_metrics", refused)
        calls = []
        monkeypatch.setattr(mlflow, "log_artifact", lambda *a, **k: calls.append(a))
        run.log_metrics({"test": {"accuracy": 0.9}})   # fails: warns, tracking off
        run.log_files(["metrics.json"])                # skipped: no second wait on a dead server
        assert run.log_pipeline_model(object()) is None
    assert calls == [] and mlflow.active_run() is None
    assert run.failure == TrackingFailure("log_metrics", "MlflowException",
                                          "API request to http://127.0.0.1:1/api failed: Max retries exceeded")
    assert mlflow.tracking.MlflowClient().get_run(run.run_id).info.status == "FAILED"
    assert len(warnings) == 1 and "log_metrics" in warnings[0].getMessage()


def test_a_search_tracker_that_fails_mid_search_keeps_the_search_going(monkeypatch, warnings):
    tracker = SearchTracker()
    tracker.start("search-outage", {"maxEvals": 2})
    parent = tracker.parent_id
    monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_batch", refused)
    tracker.trial(TrialResult(TrialStatus.OK, number=0, metric=0.9, history={"loss": [0.5]}))
    tracker.trial(TrialResult(TrialStatus.OK, number=1, metric=0.8, history={"loss": [0.6]}))
    tracker.end(TrialResult(TrialStatus.OK, number=0, metric=0.9))
    assert tracker.failure.during == "log_trial" and tracker.failure.type == "MlflowException"
    assert len(warnings) == 1 and mlflow.active_run() is None
    assert mlflow.tracking.MlflowClient().get_run(parent).info.status == "FAILED"


def test_an_unreachable_tracking_server_at_start_leaves_the_job_untracked(monkeypatch, tmp_path, warnings):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    previous = mlflow.get_tracking_uri()
    try:
        tracking = start_tracking({"tracking": {"uri": f"http://127.0.0.1:{free_port()}"}}, str(tmp_path / "out"),
                                  "deepflash-outage")
    finally:
        mlflow.set_tracking_uri(previous)
    assert tracking.enabled and not tracking.active and tracking.start_run("train", {}, {}) is None
    assert tracking.failure.during == "configure" and tracking.failure.type == "MlflowException"
    assert len(warnings) == 1


def test_settle_tracking_records_the_failure_in_metrics_json_then_fails_the_job(tmp_path, warnings):
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"test": {"accuracy": 0.9}}}))
    failure = TrackingFailure("log_model", "MlflowException", "Max retries exceeded")
    with pytest.raises(TrackingFailedError, match=f"outputs are in place at {tmp_path}") as raised:
        settle_tracking(Tracking(True), failure, str(tmp_path), "metrics.json", {"test": 0.9})
    assert "MlflowException during log_model" in str(raised.value) and raised.value.result == {"test": 0.9}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == {"metrics": {"test": {"accuracy": 0.9}},
                     "tracking_error": {"during": "log_model", "type": "MlflowException",
                                        "message": "Max retries exceeded"}}

    settle_tracking(Tracking(True, required=False), failure, str(tmp_path), "metrics.json")  # succeeds
    assert len(warnings) == 1 and "tracking.required is false" in warnings[0].getMessage()
    settle_tracking(Tracking(True), None, str(tmp_path), "metrics.json")  # no failure: nothing to do


def test_deepflash_exits_3_naming_the_output_when_tracking_failed(monkeypatch, tmp_path, capsys):
    def tracked_badly(call):
        raise TrackingFailedError(f"the outputs are in place at {call.output}, but tracking to MLflow failed")

    monkeypatch.setattr(jobs_main, "JOBS", tuple(
        dataclasses.replace(job, run=tracked_badly) if job.name == "train" else job for job in jobs_main.JOBS))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"tracking": {"required": True}}))
    with pytest.raises(SystemExit) as done:
        jobs_main.main(["train", "--config", str(config), "--output", str(tmp_path / "out")])
    assert done.value.code == 3
    assert f"deepflash train: the outputs are in place at {tmp_path / 'out'}, but tracking to MLflow failed" \
        in capsys.readouterr().err
