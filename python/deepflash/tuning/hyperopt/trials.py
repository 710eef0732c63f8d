"""Hyperopt's side of a trial: a :class:`~deepflash.tuning.trial.TrialResult` as the result dict
hyperopt takes (``{"status": "ok"|"fail", "loss": ...}``), and each trial doc of hyperopt's
``Trials`` back as a numbered TrialResult, cancelled and lost trials included.
"""
from __future__ import annotations

from typing import Any

from deepflash.tuning.trial import CANCELLED, NOT_FINISHED, TrialResult, TrialStatus
from deepflash.tuning.trial import trials_table as results_table

# hyperopt's status words for a trial with a result
OK, FAIL = "ok", "fail"


def result_to_hyperopt(result: TrialResult, mode: str) -> dict:
    """The result dict hyperopt takes: its ``status`` and, when ok, the ``loss`` it minimizes (the
    metric, negated for ``mode == "max"``); the result's own fields ride along as plain data."""
    out = result.record()
    out["status"] = OK if result.ok else FAIL
    if result.ok:
        out["loss"] = -result.metric if mode == "max" else result.metric
    return out


def result_from_hyperopt(doc: dict) -> TrialResult:
    """A hyperopt trial doc (``tid``, ``state``, ``result``, ``misc``) as a numbered TrialResult:
    its result when it has one, else FAILED with why (its Spark task failed, or it was cancelled
    or not finished at a timeout)."""
    from hyperopt.base import JOB_STATE_ERROR

    result = doc.get("result") or {}
    status = result.get("status")
    if status in (OK, FAIL):
        record = {k: v for k, v in result.items() if k != "loss"}
        record["status"] = (TrialStatus.OK if status == OK else TrialStatus.FAILED).value
        return TrialResult.from_record(record).numbered(doc["tid"])
    error = (doc.get("misc") or {}).get("error")
    if (doc.get("misc") or {}).get("cancelled"):
        return TrialResult(TrialStatus.FAILED, number=doc["tid"], error=CANCELLED, cancelled=True)
    if doc.get("state") == JOB_STATE_ERROR and error:
        why = f"the trial's Spark task failed: {error[0]}\n{error[1] or ''}".rstrip()
    else:
        why = NOT_FINISHED
    return TrialResult(TrialStatus.FAILED, number=doc["tid"], error=why)


def finished(trials: Any) -> list[TrialResult]:
    """The trials that returned a result (hyperopt's ``trials.trials``), as TrialResults."""
    return [result_from_hyperopt(t) for t in trials.trials if (t.get("result") or {}).get("status") in (OK, FAIL)]


def all_results(trials: Any) -> list[TrialResult]:
    """Every trial by number, including those cancelled at a timeout or lost to a failed Spark task
    (hyperopt's ``trials.trials`` leaves cancelled and errored docs out)."""
    docs = sorted(getattr(trials, "_dynamic_trials", trials.trials), key=lambda t: t["tid"])
    return [result_from_hyperopt(t) for t in docs]


def trials_table(trials: Any):
    """One row per hyperopt trial (see :meth:`~deepflash.tuning.trial.TrialResult.row`), cancelled
    and lost ones included."""
    return results_table(all_results(trials))
