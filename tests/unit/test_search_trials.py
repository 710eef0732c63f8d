"""The trials table and the all-failed message, from hand-made hyperopt trial docs (no Spark)."""
from __future__ import annotations

from types import SimpleNamespace

from hyperopt.base import JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR

from deepflash.tuning.hyperopt.search import _first_error, trials_table

TRACE = 'Traceback (most recent call last):\n  File "networks.py", line 9, in build_model\nValueError: bad conv2d\n'


def doc(tid: int, state: int, result: dict, error: tuple | None = None) -> dict:
    return {"tid": tid, "state": state, "result": result, "misc": {"error": error} if error else {}}


def test_each_trial_row_says_why_it_failed():
    docs = [
        doc(2, JOB_STATE_CANCEL, {"status": "new"}, ("<class 'Exception'>", "cancelled")),
        doc(0, JOB_STATE_DONE, {"status": "ok", "metric": 0.9, "epochs": 3, "params": {"optimizer": "adam"},
                                "final": {"val_loss": 0.3}}),
        doc(1, JOB_STATE_DONE, {"status": "fail", "error": "ValueError: bad conv2d", "traceback": TRACE,
                                "params": {"optimizer": "sgd"}}),
        doc(3, JOB_STATE_ERROR, {"status": "new"}, ("<class 'MemoryError'>", "Traceback ...\nMemoryError\n")),
    ]
    table = trials_table(SimpleNamespace(trials=docs[1:3], _dynamic_trials=docs)).set_index("trial")
    assert list(table.index) == [0, 1, 2, 3]
    assert list(table["status"]) == ["ok", "failed", "failed", "failed"]
    assert table.loc[0, "error"] is None and table.loc[0, "final_val_loss"] == 0.3
    assert table.loc[1, "error"] == TRACE  # the whole traceback, not only the message
    assert table.loc[2, "error"] == "cancelled or not finished (timeout)"
    assert table.loc[3, "error"].startswith("the trial's Spark task failed: <class 'MemoryError'>")


def test_the_all_failed_message_leads_with_the_first_error_then_its_traceback():
    docs = [doc(1, JOB_STATE_DONE, {"status": "fail", "error": "ValueError: bad conv2d", "traceback": TRACE}),
            doc(0, JOB_STATE_DONE, {"status": "fail", "error": "KeyError: 'x'"})]
    assert _first_error(SimpleNamespace(trials=docs)) == "KeyError: 'x'"
    assert _first_error(SimpleNamespace(trials=docs[:1])) == "ValueError: bad conv2d\n" + TRACE
    assert _first_error(SimpleNamespace(trials=[])) == "none recorded (timeout?)"
