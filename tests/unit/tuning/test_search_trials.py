"""Trial results: the trials table and the all-failed message from hand-made hyperopt trial docs, the
hyperopt result dict and the Optuna trial state each way, and the stored record (no Spark)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hyperopt.base import JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR

from deepflash.tuning.hyperopt.search import trials_table
from deepflash.tuning.hyperopt.trials import all_results, result_from_hyperopt, result_to_hyperopt
from deepflash.tuning.trial import TrialResult, TrialStatus, first_error

TRACE = 'Traceback (most recent call last):\n  File "networks.py", line 9, in build_model\nValueError: bad conv2d\n'


def doc(tid: int, state: int, result: dict, error: tuple | None = None) -> dict:
    return {"tid": tid, "state": state, "result": result, "misc": {"error": error} if error else {}}


def test_each_trial_row_says_why_it_failed():
    docs = [
        doc(2, JOB_STATE_CANCEL, {"status": "new"}, ("<class 'Exception'>", "cancelled")),
        doc(0, JOB_STATE_DONE, {"status": "ok", "loss": -0.9, "metric": 0.9, "epochs": 3,
                                "params": {"optimizer": "adam"}, "final": {"val_loss": 0.3}}),
        doc(1, JOB_STATE_DONE, {"status": "fail", "error": "ValueError: bad conv2d", "traceback": TRACE,
                                "params": {"optimizer": "sgd"}}),
        doc(3, JOB_STATE_ERROR, {"status": "new"}, ("<class 'MemoryError'>", "Traceback ...\nMemoryError\n")),
    ]
    table = trials_table(SimpleNamespace(trials=docs[1:3], _dynamic_trials=docs)).set_index("trial")
    assert list(table.index) == [0, 1, 2, 3]
    assert list(table["status"]) == ["ok", "failed", "failed", "failed"]
    assert table.loc[0, "error"] is None and table.loc[0, "final_val_loss"] == 0.3
    assert table.loc[0, "epochs_run"] == 3 and table.loc[0, "optimizer"] == "adam"
    assert table.loc[1, "error"] == TRACE  # the whole traceback, not only the message
    assert table.loc[2, "error"] == "cancelled or not finished (timeout)"
    assert table.loc[3, "error"].startswith("the trial's Spark task failed: <class 'MemoryError'>")
    assert math.isnan(table.loc[1, "metric"])


def test_the_all_failed_message_leads_with_the_first_error_then_its_traceback():
    docs = [doc(1, JOB_STATE_DONE, {"status": "fail", "error": "ValueError: bad conv2d", "traceback": TRACE}),
            doc(0, JOB_STATE_DONE, {"status": "fail", "error": "KeyError: 'x'"})]
    assert first_error(all_results(SimpleNamespace(trials=docs))) == "KeyError: 'x'"
    assert first_error(all_results(SimpleNamespace(trials=docs[:1]))) == "ValueError: bad conv2d\n" + TRACE
    assert first_error([]) == "none recorded (timeout?)"


@pytest.mark.parametrize("mode, loss", [("max", -0.8), ("min", 0.8)])
def test_a_result_crosses_hyperopt_as_its_dict_and_back(mode, loss):
    result = TrialResult(TrialStatus.OK, params={"learningRate": 0.01}, sample={"learningRate": 0.01}, metric=0.8,
                         final={"val_accuracy": 0.8}, history={"val_accuracy": [0.7, 0.8]}, epochs=2, seconds=1.5,
                         num_params=10, latency_ms=0.2)
    as_dict = result_to_hyperopt(result, mode)
    assert as_dict["status"] == "ok" and as_dict["loss"] == loss
    back = result_from_hyperopt({"tid": 4, "state": JOB_STATE_DONE, "result": as_dict})
    assert back == result.numbered(4)

    failed = TrialResult.failure(ValueError("bad"), 0.5, {"optimizer": "sgd"})
    as_dict = result_to_hyperopt(failed, mode)
    assert as_dict["status"] == "fail" and "loss" not in as_dict
    back = result_from_hyperopt({"tid": 0, "state": JOB_STATE_DONE, "result": as_dict})
    assert back.status is TrialStatus.FAILED and back.error == "ValueError: bad"
    assert back.traceback.rstrip().endswith("ValueError: bad")


def test_the_record_keeps_every_field_and_the_status_word():
    result = TrialResult(TrialStatus.PRUNED, number=3, params={"epochs": 9}, metric=0.5, objectives={"a": 1.0},
                         epochs=2)
    record = result.record()
    assert record["status"] == "pruned"
    assert TrialResult.from_record(record) == result
    assert [s.value for s in TrialStatus] == ["ok", "failed", "pruned"]


def test_optuna_states_map_to_statuses_and_back():
    from optuna.trial import TrialState

    from deepflash.tuning.optuna.engine import trial_state, trial_status

    for status in TrialStatus:
        assert trial_status(trial_state(status)) is status
    assert trial_status(TrialState.RUNNING) is None and trial_status(TrialState.WAITING) is None
