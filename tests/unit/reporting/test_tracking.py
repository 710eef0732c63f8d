"""deepflash.reporting.tracking on the tests' throwaway SQLite MLflow store: how runs end, and what a failed
trial leaves behind (no Spark here)."""
from __future__ import annotations

import contextlib

import pytest

mlflow = pytest.importorskip("mlflow")

from deepflash.reporting.tracking import RunTracker, SearchTracker, end_status  # noqa: E402
from deepflash.tuning.trial import TrialResult, TrialStatus  # noqa: E402


def status(run_id: str) -> str:
    return mlflow.tracking.MlflowClient().get_run(run_id).info.status


def test_end_status_follows_the_error():
    assert end_status(None) == "FINISHED"
    assert end_status(ValueError("x")) == "FAILED"
    assert end_status(KeyboardInterrupt()) == "KILLED"


@pytest.mark.parametrize("error, expected", [(None, "FINISHED"), (RuntimeError("boom"), "FAILED"),
                                             (KeyboardInterrupt(), "KILLED")])
def test_run_tracker_ends_by_how_the_job_ended_and_leaves_no_run_open(error, expected):
    with pytest.raises(type(error)) if error else contextlib.nullcontext():
        with RunTracker("job", {"epochs": 2}) as run:
            assert mlflow.active_run().info.run_id == run.run_id
            if error:
                raise error
    assert status(run.run_id) == expected
    assert mlflow.active_run() is None


def test_run_tracker_nested_in_a_user_run_leaves_the_user_run_active():
    with mlflow.start_run() as outer:
        with pytest.raises(ValueError):
            with RunTracker("job") as run:
                raise ValueError("boom")
        assert mlflow.active_run().info.run_id == outer.info.run_id
    assert status(run.run_id) == "FAILED" and status(outer.info.run_id) == "FINISHED"
    assert mlflow.active_run() is None


def test_search_tracker_ends_failed_or_killed_and_keeps_a_trial_traceback():
    tracker = SearchTracker()
    tracker.start("search-unit", {"maxEvals": 1})
    parent = tracker.parent_id
    traceback_text = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: no conv2d here\n'
    tracker.trial(TrialResult(TrialStatus.FAILED, number=0, error="ValueError: no conv2d here",
                              traceback=traceback_text, params={"optimizer": "adam"}))
    tracker.end(None, RuntimeError("all 1 trials failed"))
    assert status(parent) == "FAILED" and mlflow.active_run() is None
    child = mlflow.search_runs(search_all_experiments=True, output_format="list",
                               filter_string=f"tags.mlflow.parentRunId = '{parent}'")[0]
    assert child.info.status == "FAILED" and child.data.tags["deepflash.status"] == "failed"
    assert child.data.tags["deepflash.trial"] == "0" and child.data.params == {"optimizer": "adam"}
    assert child.data.tags["deepflash.error"] == "ValueError: no conv2d here"
    assert child.data.tags["deepflash.traceback"] == traceback_text

    tracker.start("search-unit", {"maxEvals": 1})
    killed = tracker.parent_id
    tracker.end(None, KeyboardInterrupt())
    assert status(killed) == "KILLED" and mlflow.active_run() is None


def test_a_long_traceback_keeps_its_last_lines():
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    tracker = SearchTracker()
    tracker.start("search-unit", {"maxEvals": 1})
    parent = tracker.parent_id
    long = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "ValueError: the real cause\n"
    tracker.trial(TrialResult(TrialStatus.FAILED, number=0, error="ValueError: the real cause", traceback=long))
    tracker.end(None, RuntimeError("failed"))
    child = mlflow.search_runs(search_all_experiments=True, output_format="list",
                               filter_string=f"tags.mlflow.parentRunId = '{parent}'")[0]
    kept = child.data.tags["deepflash.traceback"]
    assert len(kept) <= MAX_TAG_VAL_LENGTH and kept.endswith("ValueError: the real cause\n")


def test_an_ok_and_a_pruned_trial_finish_with_their_history_and_the_best_closes_the_parent():
    tracker = SearchTracker()
    tracker.start("search-unit", {"maxEvals": 2})
    parent = tracker.parent_id
    best = TrialResult(TrialStatus.OK, number=0, metric=0.8, history={"val_accuracy": [0.7, 0.8]},
                       params={"learningRate": 0.01})
    tracker.trial(best)
    tracker.trial(TrialResult(TrialStatus.PRUNED, number=1, metric=0.4, history={"val_accuracy": [0.4]}), name="p")
    tracker.end(best)
    client = mlflow.tracking.MlflowClient()
    assert status(parent) == "FINISHED" and client.get_run(parent).data.metrics["best_metric"] == 0.8
    children = {c.data.tags["deepflash.trial"]: c for c in mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string=f"tags.mlflow.parentRunId = '{parent}'")}
    assert {k: (c.info.status, c.data.tags["deepflash.status"]) for k, c in children.items()} == {
        "0": ("FINISHED", "ok"), "1": ("FINISHED", "pruned")}
    assert children["1"].info.run_name == "p" and children["0"].data.metrics["search_metric"] == 0.8
    steps = client.get_metric_history(children["0"].info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in steps] == [(0, 0.7), (1, 0.8)]
