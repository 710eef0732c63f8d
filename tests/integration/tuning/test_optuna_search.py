"""OptunaSearch on local Spark: pruning, both engines over one space, JournalStorage with parallel
trials, failed trials, save/load."""
from __future__ import annotations

import os
import time

import pytest

from deepflash import HyperoptSearch, KerasEstimator, KerasModel, OptunaSearch, OptunaSearchModel
from helpers import accuracy

pytestmark = pytest.mark.slow

DENSE = [{"type": "dense", "units": 64, "activation": "relu"}]
CONV = [{"type": "conv2d", "filters": 4, "kernel_size": 3}]   # cannot be built on a flat vector: fails


@pytest.fixture(scope="module")
def pruned_search(digits, tmp_path_factory):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=8, batchSize=32, seed=3, layers=DENSE,
                         storePath=str(tmp_path_factory.mktemp("store")))
    # sgd at a tiny rate learns far slower than adam: the median pruner stops such trials early
    space = {"optimizer": {"choice": ["adam", "sgd"]}, "learningRate": {"loguniform": [1e-4, 2e-2]}}
    search = OptunaSearch(estimator=est, space=space, sampler="tpe", pruner="median", maxEvals=8,
                          metric="val_accuracy", mode="max", seed=2)
    return search.fit(train)


@pytest.mark.both_profiles(reason="the pruning callback stops a Keras 2 or a Keras 3 fit")
def test_pruned_trials_are_stopped_and_marked(pruned_search, digits):
    _, test = digits
    found = pruned_search
    assert isinstance(found, OptunaSearchModel) and isinstance(found.bestModel, KerasModel)
    table = found.trials
    assert len(table) == 8 and set(table["status"]) <= {"ok", "pruned"}
    pruned = table[table["status"] == "pruned"]
    assert len(pruned) >= 1, table[["status", "optimizer", "learningRate", "epochs_run", "metric"]]
    assert (pruned["epochs_run"] < 8).all() and (pruned["epochs"] == 8).all()   # stopped before their budget
    assert (table[table["status"] == "ok"]["epochs_run"] == 8).all()
    assert pruned["error"].isna().all()
    assert accuracy(found.transform(test)) >= 0.95


def test_pruned_trials_are_tagged_in_mlflow(pruned_search):
    import mlflow

    parent = mlflow.get_run(pruned_search.mlflowRunId)
    assert parent.data.tags["mlflow.runName"] == "search-optuna-tpe" and parent.info.status == "FINISHED"
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    statuses = sorted(c.data.tags["deepflash.status"] for c in children)
    assert statuses == sorted(pruned_search.trials["status"])
    assert "pruned" in statuses


def test_the_same_space_runs_under_both_engines(digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=1, seed=3, storePath=str(tmp_path))
    space = {"learningRate": {"loguniform": [1e-3, 1e-2]}, "batchSize": {"quniform": [32, 64, 32]},
             "layers": {"architecture": {"depth": [1, 2], "units": [16, 32]}}}
    for search in (HyperoptSearch(algo="random"), OptunaSearch(sampler="random")):
        found = search.setEstimator(est).setSpace(space).setMaxEvals(2).setRefit(False).setTrack(False).fit(train)
        assert list(found.trials["status"]) == ["ok", "ok"]
        for _, row in found.trials.iterrows():
            assert 1e-3 <= row["learningRate"] <= 1e-2 and row["batchSize"] in (32, 64)
            assert "dense" in row["layers"]


@pytest.fixture(scope="module")
def parallel_search(digits, tmp_path_factory):
    train, _ = digits
    store = tmp_path_factory.mktemp("store")
    est = KerasEstimator(backend="local", epochs=4, batchSize=32, seed=3, layers=DENSE, storePath=str(store))
    space = {"learningRate": {"loguniform": [3e-3, 3e-2]}, "layers": {"choice": [DENSE, CONV]}}
    search = OptunaSearch(estimator=est, space=space, sampler="random", maxEvals=4, parallelism=2,
                          metric="val_accuracy", mode="max", seed=5)
    return search.fit(train), str(store)


@pytest.mark.connect
def test_parallel_trials_share_a_journal_storage_in_the_store(parallel_search):
    found, store = parallel_search
    journals = os.listdir(os.path.join(store, "optuna"))
    assert len(journals) == 1 and journals[0].endswith(".log")
    assert sorted(found.trials["trial"]) == [0, 1, 2, 3]
    assert (found.trials["status"] == "ok").sum() >= 1


@pytest.mark.connect
def test_a_failing_trial_is_recorded_and_the_search_completes(parallel_search):
    found, _ = parallel_search
    table = found.trials
    conv2d = table[table["layers"].str.contains("conv2d")]
    assert set(table[table["status"] == "failed"]["trial"]) == set(conv2d["trial"])
    for _, row in table[table["status"] == "failed"].iterrows():
        assert row["error"].startswith("Traceback (most recent call last)") and "conv2d" in row["error"]


def test_optuna_search_model_save_load(parallel_search, digits, tmp_path):
    found, _ = parallel_search
    _, test = digits
    path = str(tmp_path / "search")
    found.save(path)
    loaded = OptunaSearchModel.load(path)
    assert loaded.bestParams == found.bestParams and loaded.getSampler() == "random"
    assert list(loaded.trials["status"]) == list(found.trials["status"])
    before = [r.prediction for r in found.transform(test).select("prediction").collect()]
    after = [r.prediction for r in loaded.transform(test).select("prediction").collect()]
    assert before == after


@pytest.mark.connect
def test_timeout_interrupts_running_parallel_trials(digits, tmp_path, slots_free):
    """Both trials would train for many minutes; the timeout interrupts their tasks, records them
    as not finished, and frees the task slots."""
    train, _ = digits
    est = KerasEstimator(backend="local", batchSize=16, layers=DENSE, storePath=str(tmp_path))
    search = OptunaSearch(estimator=est, space={"epochs": {"choice": [5000]}}, sampler="random", maxEvals=2,
                          parallelism=2, timeout=15, metric="val_loss", refit=False, track=False)
    started = time.time()
    with pytest.raises(RuntimeError, match=r"all 2 trials failed; the first error: cancelled at the search's timeout"):
        search.fit(train)
    assert time.time() - started < 15 + 60, "the search waited for its trials instead of interrupting them"
    slots_free()
