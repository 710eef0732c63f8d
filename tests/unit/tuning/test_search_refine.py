"""Coarse-to-fine (space.narrow), the multi-objective Params and the Pareto mask: no Spark."""
from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from deepflash import HyperoptSearch, KerasEstimator, OptunaSearch
from deepflash.reporting.metrics import pareto_mask, satisficing
from deepflash.tuning.optuna.space import suggest
from deepflash.tuning.space import check_space, narrow

SPACE = {"learningRate": {"loguniform": [1e-4, 1e-1]}, "momentum": {"uniform": [0.0, 0.9]},
         "batchSize": {"quniform": [16, 128, 16]}, "epochs": {"randint": [1, 10]},
         "optimizer": {"choice": ["adam", "sgd", "rmsprop"]},
         "layers": {"architecture": {"depth": [1, 3], "units": [16, 32, 64], "dropout": [0.0, 0.5]}}}


def top_samples(seed: int, k: int = 3) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    samples = []
    for _ in range(k):
        trial = study.ask()
        samples.append(suggest(trial, SPACE))
        study.tell(trial, 0.0)
    return samples


@pytest.mark.parametrize("seed", range(5))
def test_narrowed_bounds_hold_the_top_samples_and_lie_within_the_space(seed):
    samples = top_samples(seed)
    refined = narrow(SPACE, samples)
    check_space(refined)
    lr, momentum = refined["learningRate"]["loguniform"], refined["momentum"]["uniform"]
    assert 1e-4 <= lr[0] <= min(s["learningRate"] for s in samples)
    assert max(s["learningRate"] for s in samples) <= lr[1] <= 1e-1
    momenta = [s["momentum"] for s in samples]
    assert 0.0 <= momentum[0] <= min(momenta) <= max(momenta) <= momentum[1]
    lo, hi, q = refined["batchSize"]["quniform"]
    assert q == 16 and 16 <= lo <= min(s["batchSize"] for s in samples) and hi <= 128
    assert (lo - 16) % 16 == 0 and (hi - 16) % 16 == 0
    assert refined["epochs"]["randint"][0] <= min(s["epochs"] for s in samples)
    assert max(s["epochs"] for s in samples) < refined["epochs"]["randint"][1] <= 10
    assert refined["optimizer"]["choice"] == [o for o in SPACE["optimizer"]["choice"]
                                              if o in {s["optimizer"] for s in samples}]
    arch = refined["layers"]["architecture"]
    depths = [len(s["layers"]["architecture"]) for s in samples]
    assert arch["depth"] == [min(depths), max(depths)]
    units = {layer["units"] for s in samples for layer in s["layers"]["architecture"]}
    assert set(arch["units"]) == units


def test_one_top_trial_narrows_a_log_range_to_a_fifth_of_its_log_width():
    refined = narrow({"learningRate": {"loguniform": [1e-4, 1e-1]}}, [{"learningRate": 1e-2}])
    lo, hi = refined["learningRate"]["loguniform"]
    assert math.log10(hi / lo) == pytest.approx(0.2 * 3)   # margin 0.1 of 3 decades on each side
    assert lo < 1e-2 < hi


def test_narrowing_keeps_bounds_inside_the_original_space():
    refined = narrow({"momentum": {"uniform": [0.0, 0.9]}}, [{"momentum": 0.89}, {"momentum": 0.85}])
    assert refined["momentum"]["uniform"] == [pytest.approx(0.76), 0.9]


def test_a_raw_hyperopt_expression_cannot_be_refined():
    from hyperopt import hp

    search = HyperoptSearch(estimator=KerasEstimator(), space={"learningRate": hp.uniform("lr", 0.1, 0.2)}, refine=2)
    with pytest.raises(ValueError, match=r"`space`\['learningRate'\] is a raw hyperopt expression; `refine` needs"):
        search.validateParams()


def test_pareto_mask_marks_the_non_dominated_ok_trials():
    trials = pd.DataFrame({"trial": range(6), "status": ["ok", "ok", "ok", "ok", "failed", "ok"],
                           "acc": [0.90, 0.95, 0.80, 0.94, 0.99, 0.96],
                           "latency_ms": [1.0, 3.0, 2.0, 3.5, 0.1, 10.0]})
    mask = pareto_mask(trials, [("acc", "max"), ("latency_ms", "min")])
    assert list(trials["trial"][mask]) == [0, 1, 5]
    for i in trials.index[mask]:   # no ok trial is at least as good on both and better on one
        a, b = trials.loc[i, "acc"], trials.loc[i, "latency_ms"]
        ok = trials[trials["status"] == "ok"]
        assert not ((ok["acc"] >= a) & (ok["latency_ms"] <= b) & ((ok["acc"] > a) | (ok["latency_ms"] < b))).any()
    chosen = satisficing(trials.assign(metric=trials["acc"]), "metric", "max", {"latency_ms": "<= 5"})
    assert chosen["trial"] == 1


def test_multi_objective_params_and_their_errors():
    est = KerasEstimator(validationSplit=0.2)
    space = {"learningRate": {"loguniform": [1e-3, 1e-2]}}
    search = OptunaSearch(estimator=est, space=space, metric=["val_accuracy", "latency_ms"], mode=["max", "min"],
                          sampler="nsga2", satisficing={"latency_ms": ["<=", 100]})
    search.validateParams()
    assert search.getSatisficing() == {"latency_ms": "<= 100"} and search.metricList() == ["val_accuracy", "latency_ms"]
    with pytest.raises(ValueError, match=r"`mode` == 'max' does not match `metric` == \['val_accuracy', "
                                         r"'latency_ms'\]: give one mode"):
        search.copy().setMode("max").validateParams()
    with pytest.raises(ValueError, match=r"`metric` 'val_f1' is not recorded by the trials; they record: loss, "
                                         r"accuracy, val_loss, val_accuracy, latency_ms, num_params"):
        search.copy().setMetric(["val_f1", "latency_ms"]).validateParams()
    with pytest.raises(ValueError, match=r"`pruner` == 'median': Optuna prunes single-objective searches only"):
        search.copy().setPruner("median").validateParams()
    with pytest.raises(ValueError, match=r"`sampler` == 'cmaes' optimizes one metric"):
        search.copy().setSampler("cmaes").validateParams()
    with pytest.raises(ValueError, match=r"`satisficing` column 'latency' is not in the trials table"):
        search.copy().setSatisficing({"latency": "<= 3"}).validateParams()
    with pytest.raises(ValueError, match=r"`satisficing`: constraint on 'latency_ms': 'fast'"):
        OptunaSearch(satisficing={"latency_ms": "fast"})
    with pytest.raises(ValueError, match=r"HyperoptSearch optimizes one metric"):
        HyperoptSearch(estimator=est, space=space, metric=["val_accuracy", "latency_ms"],
                       mode=["max", "min"]).validateParams()
    with pytest.raises(ValueError, match=r"`refine` == 2 ranks trials by one metric"):
        search.copy().setRefine(2).validateParams()
    with pytest.raises(ValueError, match=r"`metric` 'val_loss' is not recorded by the trials; they record: loss, "
                                         r"accuracy, latency_ms"):
        OptunaSearch(estimator=KerasEstimator(validationSplit=0.0), space=space).validateParams()
