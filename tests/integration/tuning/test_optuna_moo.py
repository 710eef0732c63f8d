"""OptunaSearch beyond one metric on local Spark: a two-objective search (Pareto front, satisficing
choice, plot), refine for both engines, the GP sampler, an RDB storage and a parallel timeout."""
from __future__ import annotations

import os
import sys
import time

import pytest

from deepflash import HyperoptSearch, KerasEstimator, OptunaSearch, OptunaSearchModel
from helpers import accuracy

pytestmark = pytest.mark.slow

DENSE = [{"type": "dense", "units": 32, "activation": "relu"}]


@pytest.fixture(scope="module")
def two_objectives(digits, tmp_path_factory):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=2, batchSize=32, seed=3, storePath=str(tmp_path_factory.mktemp("s")))
    # one hidden layer of 8, 64 or 256 units: 610, 4874 or 19466 weights on digits' 64 features
    space = {"layers": {"architecture": {"depth": [1, 1], "units": [8, 64, 256]}},
             "learningRate": {"loguniform": [1e-3, 2e-2]}}
    search = OptunaSearch(estimator=est, space=space, sampler="nsga2", maxEvals=6,
                          metric=["val_accuracy", "latency_ms"], mode=["max", "min"],
                          satisficing={"num_params": "<= 5000"}, seed=1)
    return search.fit(train)


def test_the_pareto_front_is_not_dominated(two_objectives):
    table = two_objectives.trials
    ok = table[table["status"] == "ok"]
    front = two_objectives.paretoFront
    assert len(ok) == 6 and 1 <= len(front) <= len(ok)
    for _, p in front.iterrows():
        better = ((ok["val_accuracy"] >= p["val_accuracy"]) & (ok["latency_ms"] <= p["latency_ms"])
                  & ((ok["val_accuracy"] > p["val_accuracy"]) | (ok["latency_ms"] < p["latency_ms"])))
        assert not better.any(), (p, ok[better])
    # every trial off the front is dominated by one on it
    for _, q in ok[~ok["pareto"]].iterrows():
        assert ((front["val_accuracy"] >= q["val_accuracy"]) & (front["latency_ms"] <= q["latency_ms"])).any()


def test_the_satisficing_choice_is_the_best_trial_within_its_constraint(two_objectives, digits):
    _, test = digits
    table = two_objectives.trials
    ok = table[table["status"] == "ok"]
    allowed = ok[ok["num_params"] <= 5000]
    chosen = ok[ok["learningRate"] == two_objectives.bestParams["learningRate"]].iloc[0]
    assert chosen["num_params"] <= 5000 and chosen["val_accuracy"] == allowed["val_accuracy"].max()
    assert accuracy(two_objectives.transform(test)) >= 0.85


def test_the_front_is_plotted_and_survives_save_load(two_objectives, tmp_path):
    path = two_objectives.plotParetoFront(str(tmp_path / "pareto.png"))
    assert os.path.getsize(path) > 10_000
    two_objectives.save(str(tmp_path / "found"))
    loaded = OptunaSearchModel.load(str(tmp_path / "found"))
    assert list(loaded.paretoFront["trial"]) == list(two_objectives.paretoFront["trial"])
    assert loaded.getMetric() == ["val_accuracy", "latency_ms"] and loaded.getSatisficing() == {"num_params": "<= 5000"}


@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_refine_searches_again_within_the_narrowed_space(engine, digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=1, batchSize=32, seed=3, layers=DENSE, storePath=str(tmp_path))
    space = {"learningRate": {"loguniform": [1e-4, 1e-1]}, "batchSize": {"quniform": [16, 128, 16]},
             "optimizer": {"choice": ["adam", "sgd", "rmsprop"]}}
    search = (HyperoptSearch(algo="random") if engine == "hyperopt" else OptunaSearch(sampler="random"))
    found = (search.setEstimator(est).setSpace(space).setMaxEvals(5).setRefine(2).setRefineEvals(4)
             .setMetric("val_accuracy").setMode("max").setRefit(False).setTrack(False).fit(train))
    table, refined = found.trials, found.refinedSpace
    assert list(table["stage"]) == [1] * 5 + [2] * 4 and list(table["trial"]) == list(range(9))
    top = table[(table["stage"] == 1) & (table["status"] == "ok")].nlargest(2, "metric")
    assert set(refined["optimizer"]["choice"]) == set(top["optimizer"])
    lo, hi = refined["learningRate"]["loguniform"]
    assert (hi / lo) < 1e3   # narrower than the first stage's three decades
    for _, row in table[table["stage"] == 2].iterrows():
        assert lo <= row["learningRate"] <= hi
        assert refined["batchSize"]["quniform"][0] <= row["batchSize"] <= refined["batchSize"]["quniform"][1]
        assert row["optimizer"] in refined["optimizer"]["choice"]


def test_the_gp_sampler_models_the_trials_with_torch(digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=1, batchSize=32, seed=3, layers=DENSE, storePath=str(tmp_path))
    found = OptunaSearch(estimator=est, space={"learningRate": {"loguniform": [1e-3, 3e-2]}}, sampler="gp",
                         maxEvals=5, metric="val_accuracy", mode="max", refit=False, track=False).fit(train)
    assert list(found.trials["status"]) == ["ok"] * 5
    assert "torch" in sys.modules and "optuna._gp.gp" in sys.modules   # trials 4 and 5 came from the GP


def test_parallel_trials_on_a_sqlite_storage(digits, tmp_path):
    import optuna

    train, _ = digits
    est = KerasEstimator(backend="local", epochs=1, batchSize=32, seed=3, layers=DENSE, storePath=str(tmp_path / "s"))
    url = f"sqlite:///{tmp_path}/optuna.db"
    found = OptunaSearch(estimator=est, space={"learningRate": {"loguniform": [1e-3, 3e-2]}}, sampler="tpe",
                         maxEvals=4, parallelism=2, storage=url, metric="val_accuracy", mode="max", refit=False,
                         track=False).fit(train)
    assert list(found.trials["status"]) == ["ok"] * 4
    (summary,) = optuna.get_all_study_summaries(storage=url)
    assert summary.n_trials == 4
    assert not os.path.exists(tmp_path / "s" / "optuna")   # no journal file besides the user's storage


def test_a_parallel_timeout_cancels_the_running_trials(spark, digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", batchSize=32, seed=3, layers=DENSE, storePath=str(tmp_path))
    # Seeded per worker (seed + worker): worker 0 draws 1 epoch, worker 1 draws 2000 (minutes of training).
    found = OptunaSearch(estimator=est, space={"epochs": {"choice": [1, 2000]}}, sampler="random", maxEvals=2,
                         parallelism=2, timeout=30, seed=2, metric="val_accuracy", mode="max", refit=False,
                         track=False).fit(train)
    table = found.trials.set_index("epochs")
    assert table.loc[1, "status"] == "ok" and table.loc[1, "epochs_run"] == 1
    assert table.loc[2000, "status"] == "failed" and table.loc[2000, "error"] == "cancelled at the search's timeout"
    assert bool(table.loc[2000, "cancelled"]) and not bool(table.loc[1, "cancelled"])
    tracker = spark.sparkContext.statusTracker()
    deadline = time.time() + 15  # a killed task takes a moment to report back
    while tracker.getActiveJobsIds() and time.time() < deadline:
        time.sleep(0.5)
    assert tracker.getActiveJobsIds() == [], "the cancelled trial's Spark job is still running"
