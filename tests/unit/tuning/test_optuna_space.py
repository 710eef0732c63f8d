"""The dict space drawn through Optuna trials, the grid, and OptunaSearch as a Params holder (no Spark)."""
from __future__ import annotations

import importlib.util

import optuna
import pytest

from deepflash import KerasEstimator, OptunaSearch, OptunaSearchModel
from deepflash.tuning.optuna.engine import check_sampler
from deepflash.tuning.optuna.search import OPTUNA_PARAMS
from deepflash.tuning.optuna.space import check_optuna_space, optuna_grid, suggest
from deepflash.tuning.space import to_params

SPACE = {"learningRate": {"loguniform": [1e-4, 1e-1]}, "momentum": {"uniform": [0.5, 0.9]},
         "batchSize": {"quniform": [16, 128, 16]}, "lrMinRate": {"qloguniform": [1e-5, 1e-3, 1e-5]},
         "epochs": {"randint": [1, 4]}, "optimizer": {"choice": ["adam", "sgd"]},
         "augmentation": {"choice": [[], [{"type": "shift", "factor": 0.1}]]},
         "layers": {"architecture": {"depth": [1, 3], "units": [16, 32], "dropout": [0.0, 0.3]}}}


def draws(space: dict, n: int = 30) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(to_params(suggest(trial, space), "simple"))
        study.tell(trial, 0.0)
    return out


def test_every_kind_draws_within_its_dimension():
    for p in draws(SPACE):
        assert 1e-4 <= p["learningRate"] <= 1e-1 and 0.5 <= p["momentum"] <= 0.9
        assert p["batchSize"] in range(16, 129, 16)
        assert 1e-5 <= p["lrMinRate"] <= 1e-3 + 1e-12
        assert p["epochs"] in (1, 2, 3)                     # hyperopt's randint excludes the high end
        assert p["optimizer"] in ("adam", "sgd")
        assert p["augmentation"] in ([], [{"type": "shift", "factor": 0.1}])
        dense = [layer for layer in p["layers"] if layer["type"] == "dense"]
        assert 1 <= len(dense) <= 3 and {layer["units"] for layer in dense} <= {16, 32}


def test_draws_cover_the_choices_and_depths():
    found = draws(SPACE, 40)
    assert {p["optimizer"] for p in found} == {"adam", "sgd"}
    assert {len(p["augmentation"]) for p in found} == {0, 1}
    assert {sum(layer["type"] == "dense" for layer in p["layers"]) for p in found} == {1, 2, 3}


def test_the_grid_holds_choice_values_or_their_indices():
    grid = optuna_grid({"optimizer": {"choice": ["adam", "sgd"]},
                        "layers": {"choice": [[{"type": "dense", "units": 8}], "simple"]}})
    assert grid == {"optimizer": ["adam", "sgd"], "layers": [0, 1]}
    with pytest.raises(ValueError, match=r"sampler='grid' needs `choice` dimensions only; `space`\['learningRate'\]"):
        optuna_grid({"learningRate": {"uniform": [0.1, 0.2]}})


def test_a_raw_hyperopt_expression_is_refused():
    from hyperopt import hp

    with pytest.raises(ValueError, match=r"`space`\['learningRate'\] is a raw hyperopt expression"):
        check_optuna_space({"learningRate": hp.uniform("lr", 0.1, 0.2)})


def test_gp_without_torch_says_what_to_install():
    if importlib.util.find_spec("torch") is not None:
        check_sampler("gp")
        return
    with pytest.raises(ImportError, match=r"sampler='gp'.*needs torch.*deepflash\[gp\].*pip install torch"):
        check_sampler("gp")
    search = OptunaSearch(estimator=KerasEstimator(), space={"epochs": {"choice": [1]}}, sampler="gp")
    with pytest.raises(ImportError, match="needs torch"):
        search.validateParams()


@pytest.mark.parametrize("cls", [OptunaSearch, OptunaSearchModel])
def test_builds_with_no_arguments_and_setters_return_self(cls):
    values = {"space": {"epochs": {"choice": [1, 2]}}, "sampler": "cmaes", "pruner": "hyperband", "maxEvals": 3,
              "parallelism": 2, "metric": "val_accuracy", "mode": "max", "metricEpoch": "last", "timeout": 60.0,
              "refit": False, "storage": "sqlite:///x.db", "seed": 4, "track": False,
              "satisficing": {"latency_ms": "<= 5"}, "refine": 3, "refineEvals": 6,
              "trialFraction": 0.5, "refitParams": {"epochs": 3}}
    stage = cls()
    assert stage.getSampler() == "tpe" and stage.getPruner() == "none" and stage.getMaxEvals() == 20
    assert set(OPTUNA_PARAMS) == set(values)
    for name, value in values.items():
        cap = name[0].upper() + name[1:]
        assert getattr(stage, "set" + cap)(value) is stage
        assert getattr(stage, "get" + cap)() == value


def test_bad_params_name_themselves():
    with pytest.raises(ValueError, match=r"`sampler` == 'bayes', must be one of: tpe, random, gp, cmaes, grid"):
        OptunaSearch(sampler="bayes")
    with pytest.raises(ValueError, match=r"`storage` == 'db.sqlite', must be an RDB URL"):
        OptunaSearch(storage="db.sqlite")


def test_parallel_trials_on_a_remote_store_need_a_storage_url():
    est = KerasEstimator(storePath="hdfs://nn:8020/deepflash")
    search = OptunaSearch(estimator=est, space={"epochs": {"choice": [1]}}, parallelism=2)
    with pytest.raises(ValueError, match="set `storage` to an RDB URL"):
        search.validateParams()
    search.setStorage("postgresql://u@h/db").validateParams()
