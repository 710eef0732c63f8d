"""The Params every search engine shares (:class:`CommonSearchParams`) and their converters.

An engine's Params class subclasses :class:`CommonSearchParams`; :data:`COMMON_PARAMS` names the
Params that get accessors on the engine and its model.
"""
from __future__ import annotations

from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasSeed

from deepflash.ml.converters import to_choice, to_number
from deepflash.tuning.objective import METRIC_EPOCHS
from deepflash.tuning.space import check_space


def _space(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"`space` must be a dict of dimensions, found {type(value).__name__}")
    return check_space(value)


def _metrics(value: Any) -> str | list[str]:
    """One metric name, or a non-empty list of them (a multi-objective search)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        if len(set(value)) != len(value):
            raise ValueError(f"`metric` == {list(value)!r} names a metric twice")
        return value[0] if len(value) == 1 else list(value)
    raise TypeError(f"`metric` == {value!r}, must be a metric name or a non-empty list of them")


def _modes(value: Any) -> str | list[str]:
    """``max``/``min``, or a list of them, one per metric."""
    one = to_choice("mode", ("max", "min"))
    if isinstance(value, (list, tuple)) and value:
        modes = [one(v) for v in value]
        return modes[0] if len(modes) == 1 else modes
    return one(value)


def _refit_params(value: Any) -> dict:
    """``{param: value}``: names are checked against the estimator when the search is checked."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"`refitParams` == {value!r}, must be a dict of estimator Params such as {{'epochs': 30}}")
    return dict(value)


def _constraints(value: Any) -> dict:
    """``{column: "<= 100"}``: each constraint as evaluation.satisficing takes it, checked now."""
    from deepflash.reporting.metrics import parse_constraint

    if not isinstance(value, dict):
        raise TypeError(f"`satisficing` == {value!r}, must be a dict such as {{'latency_ms': '<= 100'}}")
    out = {}
    for column, text in value.items():
        if isinstance(text, (list, tuple)) and len(text) == 2:
            text = f"{text[0]} {text[1]}"
        try:
            parse_constraint(column, text)
        except ValueError as e:
            raise ValueError(f"`satisficing`: {e}") from None
        out[str(column)] = text if isinstance(text, str) else f"<= {text}"
    return out


def _optional(convert):
    """``convert``, letting None through (the Param's "no limit" or "as the default")."""

    def optional(value):
        return None if value is None else convert(value)

    return optional


def _optional_positive(name: str):
    return _optional(to_number(name, low=0, low_open=True))


class CommonSearchParams(HasSeed):
    """The Params every search engine has; an engine's Params class adds its own."""

    space = Param(Params._dummy(), "space", "search space: {param: {kind: args}} (see deepflash.tuning.space)", _space)
    maxEvals = Param(Params._dummy(), "maxEvals", "number of trials, >= 1", to_number("maxEvals", integer=True, low=1))
    parallelism = Param(Params._dummy(), "parallelism", "trials run at once (one Spark task each when > 1), >= 1",
                        to_number("parallelism", integer=True, low=1))
    metric = Param(Params._dummy(), "metric", "history metric that ranks trials, e.g. val_accuracy, or latency_ms "
                   "or num_params; a list of them is a multi-objective search (OptunaSearch)", _metrics)
    mode = Param(Params._dummy(), "mode", "max or min; a list, one per metric, with a metric list", _modes)
    metricEpoch = Param(Params._dummy(), "metricEpoch", "score a trial by its best or its last epoch",
                        to_choice("metricEpoch", METRIC_EPOCHS))
    timeout = Param(Params._dummy(), "timeout", "seconds after which the search stops; None = no limit",
                    _optional_positive("timeout"))
    refit = Param(Params._dummy(), "refit", "refit the best params on all the training data", TypeConverters.toBoolean)
    track = Param(Params._dummy(), "track", "log the search and its trials to MLflow (when installed)",
                  TypeConverters.toBoolean)
    satisficing = Param(Params._dummy(), "satisficing", "constraints on trials-table columns that the chosen "
                        "trial must meet, e.g. {'latency_ms': '<= 100'}; the best by the first metric among them",
                        _constraints)
    refine = Param(Params._dummy(), "refine", "k > 0: a second search in the space narrowed around the top k "
                   "trials of the first; 0 = off", to_number("refine", integer=True, low=0))
    refineEvals = Param(Params._dummy(), "refineEvals", "trials of the second (refine) stage; None = maxEvals",
                        _optional(to_number("refineEvals", integer=True, low=1)))
    trialFraction = Param(Params._dummy(), "trialFraction", "the fraction of the training rows the trials train "
                          "and validate on (a seeded sample, materialized once); the refit uses all rows; in (0, 1]",
                          to_number("trialFraction", low=0, low_open=True, high=1))
    refitParams = Param(Params._dummy(), "refitParams", "estimator Params the refit uses over the best trial's, "
                        "e.g. {'epochs': 30} after short trials; {} = the best trial's as they are", _refit_params)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(maxEvals=20, parallelism=1, metric="val_loss", mode="min", metricEpoch="best",
                         refit=True, seed=0, track=True, satisficing={}, refine=0, trialFraction=1.0,
                         refitParams={})

    def timeoutSeconds(self) -> float | None:
        """``timeout``, or None when it is not set (no limit)."""
        return self.getOrDefault(self.timeout) if self.isDefined(self.timeout) else None

    def metricList(self) -> list[str]:
        """``metric`` as a list (one name for a single-objective search)."""
        metric = self.getOrDefault(self.metric)
        return [metric] if isinstance(metric, str) else list(metric)

    def modeList(self) -> list[str]:
        """``mode`` as a list, one per metric (a single mode applies to a single metric)."""
        mode = self.getOrDefault(self.mode)
        return [mode] if isinstance(mode, str) else list(mode)


COMMON_PARAMS = ["space", "maxEvals", "parallelism", "metric", "mode", "metricEpoch", "timeout", "refit", "seed",
                 "track", "satisficing", "refine", "refineEvals", "trialFraction", "refitParams"]
# Trial measurements a search can rank or constrain by besides the history metrics.
MEASURED = ("latency_ms", "num_params")
