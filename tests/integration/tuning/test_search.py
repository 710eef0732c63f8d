"""HyperoptSearch on local Spark: TPE with SparkTrials, failing trials, grid, save/load."""
from __future__ import annotations

import time

import pytest

from deepflash import HyperoptSearch, HyperoptSearchModel, KerasEstimator, KerasModel
from helpers import accuracy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tpe_search(digits, tmp_path_factory):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=12, batchSize=32, seed=3,
                         storePath=str(tmp_path_factory.mktemp("store")))
    space = {"learningRate": {"loguniform": [3e-3, 3e-2]},
             "optimizer": {"choice": ["adam", "adamax", "nadam"]},
             # an impossible layer: conv2d on a flat vector cannot be built, so those trials fail
             "layers": {"choice": [[{"type": "dense", "units": 64, "activation": "relu"}],
                                   [{"type": "dense", "units": 128, "activation": "relu"}],
                                   [{"type": "conv2d", "filters": 4, "kernel_size": 3}]]}}
    search = HyperoptSearch(estimator=est, space=space, algo="tpe", maxEvals=6, parallelism=2,
                            metric="val_accuracy", mode="max", seed=1)
    return search.fit(train)


@pytest.mark.connect
def test_tpe_with_spark_trials_finds_a_good_model(tpe_search, digits):
    _, test = digits
    found = tpe_search
    assert isinstance(found, HyperoptSearchModel) and isinstance(found.bestModel, KerasModel)
    assert len(found.trials) == 6
    ok = found.trials[found.trials["status"] == "ok"]
    assert len(ok) >= 1
    assert found.bestParams["optimizer"] in ("adam", "adamax", "nadam")
    assert 3e-3 <= found.bestParams["learningRate"] <= 3e-2
    assert found.bestParams["layers"][0]["type"] == "dense"
    assert ok["metric"].max() == pytest.approx(ok["final_val_accuracy"].max(), abs=0.1)
    assert accuracy(found.transform(test)) >= 0.95


def test_search_is_a_parent_mlflow_run_with_a_nested_run_per_trial(tpe_search):
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'search-tpe'",
                                 output_format="list")
    assert parents, "no parent run for the TPE search"
    parent = parents[0]
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 6
    statuses = {c.data.tags["deepflash.status"] for c in children}
    assert statuses <= {"ok", "failed"} and "ok" in statuses
    ok_child = next(c for c in children if c.data.tags["deepflash.status"] == "ok")
    history = client.get_metric_history(ok_child.info.run_id, "val_accuracy")
    assert len(history) >= 1 and [m.step for m in history] == list(range(len(history)))
    assert "optimizer" in ok_child.data.params
    failed = [c for c in children if c.data.tags["deepflash.status"] == "failed"]
    assert len(failed) == (tpe_search.trials["status"] == "failed").sum() >= 1
    for child in failed:
        assert child.info.status == "FAILED"
        assert "conv2d" in child.data.tags["deepflash.error"]
        # the whole traceback, not only the message: it ends with the error and names the frames
        trace = child.data.tags["deepflash.traceback"]
        assert trace.startswith("Traceback (most recent call last)") and "conv2d" in trace.splitlines()[-1]
        assert "build_model" in trace
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_metric"] == pytest.approx(tpe_search.trials["metric"].max())


def test_failed_trials_are_recorded_with_their_error(tpe_search):
    table = tpe_search.trials
    failed = table[table["status"] == "failed"]
    # exactly the trials that drew the impossible conv2d network failed, and at least one did
    assert len(failed) >= 1
    assert set(failed["trial"]) == set(table[table["layers"].str.contains("conv2d")]["trial"])
    for _, row in failed.iterrows():
        assert row["error"].startswith("Traceback (most recent call last)")
        assert "conv2d" in row["error"].splitlines()[-1]
    assert table[table["status"] == "ok"]["error"].isna().all()
    assert set(table["status"]) <= {"ok", "failed"}
    columns = {"trial", "metric", "epochs", "seconds", "status", "error", "learningRate", "optimizer"}
    assert columns <= set(table.columns)


def test_search_model_save_load(tpe_search, digits, tmp_path):
    _, test = digits
    path = str(tmp_path / "search")
    tpe_search.save(path)
    loaded = HyperoptSearchModel.load(path)
    assert loaded.bestParams == tpe_search.bestParams
    assert len(loaded.trials) == 6
    assert list(loaded.trials["status"]) == list(tpe_search.trials["status"])
    assert loaded.timing == tpe_search.timing
    timing = tpe_search.timing  # the trials phase lies inside the whole fit, and holds every trial
    assert 0 < timing["trials_seconds"] < timing["search_seconds"]
    assert timing["trials_seconds"] >= tpe_search.trials["seconds"].max()
    before = [r.prediction for r in tpe_search.transform(test).select("prediction").collect()]
    after = [r.prediction for r in loaded.transform(test).select("prediction").collect()]
    assert before == after


def test_grid_evaluates_every_point_in_order(digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", epochs=2, seed=3, storePath=str(tmp_path))
    space = {"optimizer": {"choice": ["adam", "sgd"]}, "batchSize": {"choice": [32, 64]}}
    found = HyperoptSearch(estimator=est, space=space, algo="grid", maxEvals=100, parallelism=1,
                           metric="val_loss", mode="min", refit=False).fit(train)
    combos = {(r["optimizer"], r["batchSize"]) for _, r in found.trials.iterrows()}
    assert combos == {("adam", 32), ("adam", 64), ("sgd", 32), ("sgd", 64)}
    assert found.bestModel is None
    with pytest.raises(ValueError, match="refit=False"):
        found.transform(train)


def test_all_trials_failing_says_so_and_ends_the_parent_run_failed(digits, tmp_path):
    import time

    import mlflow

    train, _ = digits
    est = KerasEstimator(backend="local", epochs=1, storePath=str(tmp_path))
    space = {"layers": {"choice": [[{"type": "conv1d", "filters": 2, "kernel_size": 3}]]}}
    started_ms = int(time.time() * 1000)
    with pytest.raises(RuntimeError, match=r"all 2 trials failed; the first error: .*conv1d") as raised:
        HyperoptSearch(estimator=est, space=space, algo="random", maxEvals=2).fit(train)
    assert "Traceback (most recent call last)" in str(raised.value)
    assert mlflow.active_run() is None
    parents = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                 filter_string=f"tags.mlflow.runName = 'search-random' "
                                               f"and attributes.start_time >= {started_ms}")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert len(children) == 2 and {c.info.status for c in children} == {"FAILED"}
    assert all("conv1d" in c.data.tags["deepflash.traceback"] for c in children)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"maxEvals": 0}, ValueError, r"`maxEvals` == 0, must be >= 1"),
    ({"parallelism": 0}, ValueError, r"`parallelism` == 0, must be >= 1"),
    ({"space": {}}, ValueError, r"`space` must be a non-empty dict"),
    ({"space": {"learningrate": {"uniform": [0, 1]}}}, ValueError, r"'learningrate' is not a searchable"),
    ({"algo": "bayes"}, ValueError, r"`algo` == 'bayes', must be one of: tpe, random, anneal, grid"),
])
def test_bad_search_settings_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        HyperoptSearch(estimator=KerasEstimator(), **{"space": {"epochs": {"choice": [1]}}, **kwargs})


def test_grid_needs_choices_and_horovod_trials_need_parallelism_one(digits, tmp_path):
    train, _ = digits
    est = KerasEstimator(backend="local", storePath=str(tmp_path))
    with pytest.raises(ValueError, match="algo='grid' needs `choice` dimensions only"):
        HyperoptSearch(estimator=est, space={"learningRate": {"uniform": [0.1, 0.2]}}, algo="grid").fit(train)
    hvd = KerasEstimator(backend="horovod", numProc=2, storePath=str(tmp_path))
    with pytest.raises(ValueError, match="use parallelism=1 for distributed trials"):
        HyperoptSearch(estimator=hvd, space={"epochs": {"choice": [1]}}, parallelism=2).fit(train)
    assert not (tmp_path / "data").exists()


@pytest.mark.one_profile("the timeout's cancelling is Spark orchestration, alike on both profiles; Keras 3 inside "
                         "trials is covered by the other search tests")
@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_a_timeout_bounds_a_search_of_parallelism_1_cancelling_the_running_trial(engine, digits, tmp_path,
                                                                                slots_free):
    """Trial 0 trains 1 epoch; trial 1 would train for over 15 minutes. With parallelism 1 the trials
    run as Spark tasks one at a time, so the timeout cancels trial 1: fit returns soon after it, the
    table keeps trial 0 and marks trial 1 cancelled, and no task slot stays held."""
    from deepflash import OptunaSearch

    train, _ = digits
    est = KerasEstimator(backend="local", batchSize=16, layers=[{"type": "dense", "units": 8}],
                         storePath=str(tmp_path))
    timeout = 20
    if engine == "hyperopt":
        search = HyperoptSearch(estimator=est, space={"epochs": {"choice": [1, 5000]}}, algo="grid", maxEvals=2,
                                parallelism=1, timeout=timeout, metric="val_loss", refit=False, track=False)
    else:
        # Optuna's GridSampler draws the grid in a seeded random order: seed 1 draws epochs=1 first.
        search = OptunaSearch(estimator=est, space={"epochs": {"choice": [1, 5000]}}, sampler="grid", maxEvals=2,
                              parallelism=1, timeout=timeout, metric="val_loss", refit=False, track=False, seed=1)
    started = time.time()
    found = search.fit(train)
    late = time.time() - started - timeout
    print(f"{engine}: fit returned {late:.1f}s after its timeout (materializing and Spark start-up included)")
    # Trial 1 alone would train for over 15 minutes (5000 epochs of 0.2 s).
    assert late < 60, f"the search ran {late:.0f}s past its timeout"
    table = found.trials.set_index("trial")
    done = table[table["status"] == "ok"]
    assert len(done) == 1 and done["epochs_run"].tolist() == [1]
    cancelled = table[table["cancelled"].astype(bool)]
    assert len(cancelled) == 1 and cancelled["status"].tolist() == ["failed"]
    assert cancelled["error"].tolist() == ["cancelled at the search's timeout"]
    slots_free()


@pytest.mark.connect
def test_timeout_cancels_running_spark_trials_and_frees_their_slots(digits, tmp_path, slots_free):
    train, _ = digits
    est = KerasEstimator(backend="local", batchSize=16, storePath=str(tmp_path))
    # grid order: trial 0 trains 1 epoch and finishes; trial 1 would train for many minutes.
    search = HyperoptSearch(estimator=est, space={"epochs": {"choice": [1, 5000]}}, algo="grid", maxEvals=2,
                            parallelism=2, timeout=30, metric="val_loss", refit=False, track=False)
    found = search.fit(train)
    table = found.trials.set_index("trial")
    assert table.loc[0, "status"] == "ok" and table.loc[0, "epochs"] == 1
    assert table.loc[1, "status"] == "failed" and bool(table.loc[1, "cancelled"])
    assert not bool(table.loc[0, "cancelled"])
    slots_free()  # the cancelled trial's task no longer holds its slot


def test_trials_train_on_a_fraction_and_the_refit_on_all_rows_with_its_own_params(digits, tmp_path):
    train, test = digits
    est = KerasEstimator(backend="local", epochs=1, seed=3, storePath=str(tmp_path))
    found = HyperoptSearch(estimator=est, space={"learningRate": {"choice": [0.003, 0.01]}}, algo="random",
                           maxEvals=2, parallelism=1, metric="val_accuracy", mode="max", track=False,
                           trialFraction=0.4, refitParams={"epochs": 6}).fit(train)
    trial_rows = set(found.trials["train_rows"])
    refit_rows = found.bestModel.fitInfo.rows_read_per_rank[0]
    assert len(trial_rows) == 1
    assert 0.3 * refit_rows < trial_rows.pop() < 0.5 * refit_rows
    assert set(found.trials["epochs_run"]) == {1}
    assert len(found.bestModel.getHistory()["loss"]) == 6
    assert found.bestParams["learningRate"] in (0.003, 0.01)
    assert accuracy(found.transform(test)) >= 0.9


def test_refit_params_must_be_estimator_params_that_validate(digits, tmp_path):
    est = KerasEstimator(backend="local", epochs=1, storePath=str(tmp_path))
    space = {"learningRate": {"choice": [0.003, 0.01]}}
    with pytest.raises(ValueError, match="`refitParams` key\\(s\\) 'epoch' are not KerasEstimator Params"):
        HyperoptSearch(estimator=est, space=space, refitParams={"epoch": 6}).fit(digits[0])
    with pytest.raises(ValueError, match="`refitParams` == .*batchSize"):
        HyperoptSearch(estimator=est, space=space, refitParams={"batchSize": 0}).fit(digits[0])
    with pytest.raises(ValueError, match="`trialFraction` == 1.5, must be <= 1"):
        HyperoptSearch(estimator=est, space=space, trialFraction=1.5)
