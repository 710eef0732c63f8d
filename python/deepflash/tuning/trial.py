"""One search trial's outcome, as every engine, the progress lines, the trials table and MLflow take it.

A trial ends :class:`TrialStatus` OK (scored), FAILED (an error, or cancelled at a timeout) or PRUNED
(stopped early by Optuna's pruner). Its :class:`TrialResult` is what the trial function returns; an
engine numbers it. It becomes plain data only where a library stores it: a hyperopt result dict
(:mod:`deepflash.tuning.hyperopt.trials`) and an Optuna trial's user attribute (:meth:`TrialResult.record`).
"""
from __future__ import annotations

import enum
import math
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# Why a trial that never reported has no result.
NOT_FINISHED = "cancelled or not finished (timeout)"
# A trial that was running when the search's timeout came, and was cancelled.
CANCELLED = "cancelled at the search's timeout"


class TrialStatus(enum.Enum):
    """How a trial ended; the value is the trials table's ``status``."""

    OK = "ok"
    FAILED = "failed"
    PRUNED = "pruned"


@dataclass(frozen=True)
class TrialResult:
    """What one trial trained and measured.

    Args:
        status: how it ended.
        number: the engine's trial number; None until the engine numbers it (a hyperopt objective
            does not know its trial id).
        params: the Param values it trained with (``objective.values_for_table``).
        sample: the sample of the space as drawn (what ``space.narrow`` refines around).
        metric: the ranking metric's value; None when it failed before scoring.
        objectives: ``{metric: value}`` of a multi-objective search.
        final: each history metric's last value.
        history: the per-epoch history.
        epochs: epochs it trained (fewer than asked when pruned or stopped early).
        seconds: its wall-clock seconds.
        num_params, latency_ms: the network's size and its median batch latency.
        error: a failed trial's error in one line.
        traceback: a failed trial's whole traceback (it ends with the error).
        cancelled: it was running when the search's timeout came and was cancelled (it is FAILED).
    """

    status: TrialStatus
    number: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    sample: Mapping[str, Any] | None = None
    metric: float | None = None
    objectives: Mapping[str, float] = field(default_factory=dict)
    final: Mapping[str, float] = field(default_factory=dict)
    history: Mapping[str, list] = field(default_factory=dict)
    epochs: int = 0
    seconds: float | None = None
    num_params: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    traceback: str | None = None
    cancelled: bool = False

    @classmethod
    def failure(cls, error: BaseException, seconds: float, params: Mapping[str, Any],
                sample: Mapping[str, Any] | None = None) -> TrialResult:
        """A failed trial: the error in one line, and the whole traceback (the innermost frames say
        where a layer or the loss broke) for the trials table and MLflow."""
        return cls(TrialStatus.FAILED, params=dict(params), sample=sample, seconds=seconds,
                   error=f"{type(error).__name__}: {error}", traceback="".join(traceback.format_exception(error)))

    @property
    def ok(self) -> bool:
        return self.status is TrialStatus.OK

    def numbered(self, number: int) -> TrialResult:
        """This result as trial ``number``."""
        return replace(self, number=number)

    @property
    def detail(self) -> str | None:
        """A failed trial's traceback, else its error (the trials table's ``error``); None otherwise."""
        if self.status is not TrialStatus.FAILED:
            return None
        return self.traceback or self.error or NOT_FINISHED

    @property
    def message(self) -> str:
        """A failed trial's error, then its traceback when that says more (the all-failed message)."""
        detail = self.detail or ""
        return f"{self.error}\n{detail}" if self.error and self.error != detail else detail

    def row(self) -> dict:
        """One trials-table row: params, metric, final metrics, epochs, seconds, status, error, and
        whether the search's timeout cancelled it (``cancelled``).

        ``epochs_run`` is how many epochs the trial trained; ``epochs`` is the trial's ``epochs``
        Param, as every Param the trial ran with (the epochs run where the Param was not searched).
        """
        row = {"trial": self.number, "status": self.status.value, "metric": _number(self.metric),
               "epochs": self.epochs, "epochs_run": self.epochs, "seconds": _number(self.seconds),
               "num_params": _number(self.num_params), "latency_ms": _number(self.latency_ms),
               "error": self.detail, "cancelled": self.cancelled}
        for k, v in self.params.items():
            row[k] = v if not isinstance(v, (list, dict)) else str(v)
        for k, v in self.final.items():
            row[f"final_{k}"] = v
        for k, v in self.objectives.items():
            row.setdefault(k, v)
        return row

    def record(self) -> dict:
        """The result as JSON data (an Optuna user attribute); :meth:`from_record` reads it back."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"] = self.status.value
        for name in ("params", "objectives", "final", "history"):
            out[name] = dict(out[name])
        if self.sample is not None:
            out["sample"] = dict(self.sample)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialResult:
        """The result :meth:`record` wrote; unknown keys are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["status"] = TrialStatus(values.get("status", TrialStatus.FAILED.value))
        return cls(**values)


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def trials_table(results: Iterable[TrialResult]):
    """The trials table (pandas): one :meth:`TrialResult.row` per trial, by trial number."""
    import pandas as pd

    return pd.DataFrame([r.row() for r in sorted(results, key=lambda r: r.number if r.number is not None else -1)])


def first_error(results: Iterable[TrialResult]) -> str:
    """The lowest-numbered failed trial's :attr:`TrialResult.message`."""
    failed = sorted((r for r in results if r.status is TrialStatus.FAILED),
                    key=lambda r: r.number if r.number is not None else -1)
    return failed[0].message if failed else "none recorded (timeout?)"
