"""HyperoptSearch and HyperoptSearchModel as Params holders (no Spark needed)."""
from __future__ import annotations

import pytest

from deepflash import HyperoptSearch, HyperoptSearchModel, KerasEstimator
from deepflash.tuning.hyperopt.search import SEARCH_PARAMS

VALID = {"space": {"epochs": {"choice": [1, 2]}}, "algo": "random", "maxEvals": 3, "parallelism": 2,
         "metric": "val_accuracy", "mode": "max", "metricEpoch": "last", "timeout": 60.0, "refit": False,
         "gridSample": 0.5, "seed": 4, "track": False, "satisficing": {"num_params": "<= 10000"}, "refine": 2,
         "refineEvals": 4, "trialFraction": 0.25, "refitParams": {"epochs": 30}}


@pytest.mark.parametrize("cls", [HyperoptSearch, HyperoptSearchModel])
def test_builds_with_no_arguments_and_setters_return_self(cls):
    stage = cls()
    assert stage.getAlgo() == "tpe" and stage.getMaxEvals() == 20 and stage.getParallelism() == 1
    assert set(SEARCH_PARAMS) == set(VALID)
    for name, value in VALID.items():
        cap = name[0].upper() + name[1:]
        assert getattr(stage, "set" + cap)(value) is stage
        assert getattr(stage, "get" + cap)() == value


def test_copy_carries_an_independent_estimator():
    search = HyperoptSearch(estimator=KerasEstimator(epochs=3), space={"epochs": {"choice": [1]}}, maxEvals=4)
    twin = search.copy({search.maxEvals: 9})
    assert twin.getMaxEvals() == 9 and search.getMaxEvals() == 4
    assert twin.getEstimator() is not search.getEstimator()
    twin.getEstimator().setEpochs(5)
    assert search.getEstimator().getEpochs() == 3


@pytest.mark.parametrize("name, value, match", [
    ("timeout", 0, r"`timeout` == 0.0, must be > 0"),
    ("gridSample", 0.0, r"`gridSample` == 0.0, must be > 0"),
    ("mode", "maximize", r"`mode` == 'maximize', must be one of: max, min"),
    ("metricEpoch", "first", r"`metricEpoch` == 'first', must be one of: best, last"),
])
def test_bad_values_name_the_param(name, value, match):
    with pytest.raises(ValueError, match=match):
        HyperoptSearch()._set(**{name: value})


def test_search_without_a_keras_estimator_is_refused():
    with pytest.raises(ValueError, match="`estimator` must be a KerasEstimator, found NoneType"):
        HyperoptSearch(space={"epochs": {"choice": [1]}}).validateParams()
    with pytest.raises(ValueError, match="`space` is not set"):
        HyperoptSearch(estimator=KerasEstimator()).validateParams()
