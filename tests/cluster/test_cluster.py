"""deepflash on a real multi-node Spark cluster: two workers whose /tmp is private, a shared dir
standing in for NFS/HDFS/DBFS, every scenario in its own spark-submit driver (see conftest.py)."""
from __future__ import annotations

import importlib.util
import json
import os
import re

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _workers_used(cluster, proc) -> set[str]:
    """The workers (worker-1, worker-2) that ran executors for this spark-submit."""
    return {os.path.relpath(f, cluster.root).split(os.sep)[2] for f in proc.executor_stderrs}


@pytest.fixture(scope="module")
def isolation(cluster):
    """isolation.py's result: what each executor sees of the driver's /tmp and the shared dir, then
    how a fit without storePath failed."""
    return cluster.result(cluster.submit("isolation.py", cluster.shared_dir, timeout=300))


def test_executors_do_not_see_the_driver_tmp_but_see_the_shared_dir(isolation, cluster):
    tasks = isolation["tasks"]
    assert len(tasks) == 2
    for task in tasks:
        assert not task["sees_driver_tmp_file"], f"an executor sees the driver's /tmp: {task}"
        assert task["sees_shared_file"], f"an executor does not see the shared dir: {task}"
    workers = {os.path.relpath(t["cwd"], cluster.root).split(os.sep)[2] for t in tasks}
    assert workers == {"worker-1", "worker-2"}, f"both tasks ran on one worker: {tasks}"


@pytest.fixture(scope="module")
def fitted(cluster):
    """fit_save.py's result: the Pipeline fitted with Horovod on the cluster and saved to the shared dir."""
    proc = cluster.submit("fit_save.py", cluster.shared_dir, timeout=600)
    return {**cluster.result(proc), "workers": sorted(_workers_used(cluster, proc))}


@pytest.mark.horovod
def test_horovod_pipeline_fits_and_saves_to_shared_storage(cluster, fitted):
    assert fitted["workers"] == ["worker-1", "worker-2"], fitted
    assert fitted["accuracy"] >= 0.9, fitted
    assert fitted["rows"] > 300
    assert os.path.isdir(os.path.join(cluster.shared_dir, "model", "stages"))
    # no run id was given, so its checkpoint directory is gone
    assert not os.path.exists(os.path.join(cluster.shared_dir, "store", "runs", fitted["run_id"]))


@pytest.mark.horovod
def test_a_new_driver_loads_the_model_and_predicts_the_same(cluster, fitted):
    out = cluster.result(cluster.submit("load_predict.py", cluster.shared_dir, timeout=300))
    assert out["rows"] == out["saved_rows"] == out["common"] == fitted["rows"], out
    assert out["same_labels"] == out["rows"], "the test split differs between the two drivers"
    assert out["equal_predictions"] == out["rows"], out
    assert out["max_abs_probability_diff"] < 1e-5, out


def test_fit_without_store_path_fails_fast_naming_store_path(isolation):
    out = isolation["default_store"]
    assert out["type"] == "ValueError", out
    assert "`storePath`" in out["message"], out
    assert out["seconds"] < 30, out


def test_train_job_on_the_cluster(cluster):
    output = os.path.join(cluster.shared_dir, "train-out")
    # conf/default.yaml trains with Horovod; where the profile has none, with the barrier backend
    # (as `gradle run -Pprofile=modern` does).
    backend = [] if importlib.util.find_spec("horovod") else ["--set", "model.backend=barrier"]
    proc = cluster.submit("jobs/train.py", "--config", "conf/default.yaml", "--overwrite", "--output", output,
                          "--set", f"model.storePath={cluster.shared_dir}/store2", "--set", "tracking.enabled=false",
                          *backend, timeout=600)
    assert _workers_used(cluster, proc) == {"worker-1", "worker-2"}, (
        "the job got no executors on the cluster: it ignored spark-submit's --master "
        "(conf/default.yaml says spark.master: local[2])")
    assert os.path.isdir(os.path.join(output, "model"))
    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["metrics"]["test"]["accuracy"] >= 0.9, metrics["metrics"]["test"]


@pytest.fixture(scope="module")
def searches(cluster):
    """searches.py's results (hyperopt, optuna_ran, evolution) and the workers its executors ran on."""
    proc = cluster.submit("searches.py", cluster.shared_dir, timeout=900)
    return {**cluster.result(proc), "workers": _workers_used(cluster, proc)}


def test_hyperopt_search_with_spark_trials_on_the_cluster(searches):
    out = searches["hyperopt"]
    assert out["trials"] == 4, out
    assert out["ok"] == 4, out
    assert out["accuracy"] >= 0.9, out


def test_optuna_search_and_ran_on_the_cluster(searches):
    out = searches["optuna_ran"]
    assert out["trials"] == 6 and set(out["statuses"]) <= {"ok", "pruned"}, out
    assert "ok" in out["statuses"], out
    assert out["accuracy"] >= 0.9, out
    assert out["ran_units"] >= 3 and out["ran_mae"] < 0.1, out
    assert searches["workers"] == {"worker-1", "worker-2"}, "the trials did not run on both workers"


def test_mae_sampling_and_evolutionary_search_on_the_cluster(searches):
    out = searches["evolution"]
    assert [s["architecture"] for s in out["sampled"]] == [[1, 2, 2, 1], [1, 8, 1]], out
    for s in out["sampled"]:
        assert s["metrics"]["samples"] == 50 and np.isfinite(s["metrics"]["log_p"]), s
    assert out["layers"][0] == 1 and out["layers"][-1] == 1 and 1 <= out["look_back"] <= 6, out
    assert out["model_mae"] < 0.8 * out["persistence_mae"], out


@pytest.mark.one_profile(profile="modern", reason="the modern profile has no Horovod, so the barrier backend is "
                                                  "its way across workers; the classic one crosses them with Horovod")
def test_barrier_backend_trains_across_both_workers_without_horovod(cluster):
    proc = cluster.submit("barrier_fit.py", cluster.shared_dir, timeout=600)
    out = cluster.result(proc)
    assert _workers_used(cluster, proc) == {"worker-1", "worker-2"}, out
    # the executor check before the first fit ran on both workers' executors
    assert {os.path.relpath(w, cluster.root).split(os.sep)[2] for w in out["checked_workdirs"]} == \
        {"worker-1", "worker-2"}, out
    assert out["accuracy"] >= 0.95, out
    assert out["epochs"] == 12
    assert out["equal_predictions"] == out["rows"], out
    assert out["max_abs_probability_diff"] < 1e-6, out
    # Each rank ran in its own process, whose stderr went to its executor's log: rank 0 logs the epochs.
    logs = "".join(open(f, errors="replace").read() for f in proc.executor_stderrs)
    assert "epoch 12/12" in logs, "rank 0's epoch log did not reach an executor's stderr"
    assert out["keras_backend"] == "tensorflow", out
    # On PyTorch, readMode="stream": both ranks streamed their shards (held none whole) from the data
    # the first fit wrote, and their gradients crossed the workers through torch.distributed (Gloo).
    stream = out["stream"]
    assert stream["keras_backend"] == "torch", stream
    assert stream["read_mode"] == "stream" and stream["rows_read_per_rank"] == [-1, -1], stream
    assert stream["reused"] is True and stream["epochs"] == 12, stream
    assert stream["accuracy"] >= 0.93, stream


@pytest.mark.one_profile(profile="modern", reason="stage-level scheduling is the same code on both profiles; "
                                                  "the modern pass runs fewer cluster scenarios")
def test_the_training_stage_gets_one_gpu_per_rank_while_the_etl_keeps_its_slots(cluster):
    """Executors with two (fake) GPUs each and no task GPU amount: the ETL stage runs a task per
    core, the training stage a task per GPU, and each rank sees exactly its task's GPU."""
    proc = cluster.submit("gpu_stage.py", cluster.shared_dir, timeout=600, conf={
        "spark.executor.cores": "2", "spark.cores.max": "4", "spark.executor.resource.gpu.amount": "2",
        "spark.executor.resource.gpu.discoveryScript": str(cluster.fake_gpus)})
    out = cluster.result(proc)
    assert _workers_used(cluster, proc) == {"worker-1", "worker-2"}, out
    # 2 executors x 2 cores: the 4 ETL tasks ran at once, and took no GPU
    assert out["etl_concurrent"] == 4 and out["etl_gpus"] == [""], out
    assert out["epochs"] == 1
    devices = out["devices"]
    assert len(devices) == 2, out
    for d in devices:
        assert len(d["task_gpus"]) == 1 and d["task_gpus"][0] in ("0", "1"), out
        assert d["cuda_visible_devices"] == d["task_gpus"][0], out
    assert "training tasks: the training stage asks for its own resources (stage-level scheduling): one " \
           "per GPU, 1 CPU(s) and 1 GPU each" in proc.stdout, proc.stdout[-3000:]


def test_a_lost_executor_is_replaced_and_the_fit_resumes_from_its_last_epoch(cluster):
    """Rank 1 kills its executor JVM (by pid) at the start of epoch 4: the fit still returns, from a
    second attempt of the training stage that resumed from epoch 3's checkpoint in the shared store,
    with the weights and history of an uninterrupted fit."""
    marker = os.path.join(cluster.shared_dir, "lost-executor-marker")
    proc = cluster.submit("lost_executor.py", cluster.shared_dir, timeout=600,
                          env={"DEEPFLASH_TEST_CRASH": f"rank=1,epoch=4,marker={marker},kill=executor"})
    out = cluster.result(proc)
    assert os.path.exists(marker), "the crash hook never fired"
    # the driver saw the executor die of SIGKILL, and got a new one in its place
    assert re.search(r"Lost executor \d+ .*exited with code 137", proc.stderr), "no executor was lost"
    assert len(proc.executor_stderrs) >= 3, f"no executor replaced the lost one: {proc.executor_stderrs}"
    assert out["initial_epoch"] == 3 and out["epochs"] == 6, out
    assert out["accuracy"] >= 0.9, out
    assert out["run_dir_left"] is False, out
    # and it ended as the same fit run through without a fault
    assert out["reference_initial_epoch"] == 0 and out["same_history"], out
    assert out["max_abs_weight_diff"] == 0.0, out


@pytest.mark.connect
@pytest.mark.skipif(os.environ.get("DEEPFLASH_TEST_SPARK") != "connect",
                    reason="runs in the connect pass of `gradle test` (DEEPFLASH_TEST_SPARK=connect), once")
def test_connect_client_fits_with_barrier_saves_and_a_new_session_loads(cluster):
    with cluster.connect_server() as url:
        proc = cluster.client("connect_pipeline.py", url, cluster.shared_dir, timeout=600)
    out = cluster.result(proc)
    # the barrier ranks ran in the server's executors, one on each worker
    assert _workers_used(cluster, proc) == {"worker-1", "worker-2"}, out
    assert out["new_session"] is True, out
    assert out["keras_backend"] == "jax", out
    assert out["epochs"] == 12, out
    assert out["accuracy"] >= 0.95, out
    assert out["rows"] == out["loaded_rows"] > 300, out
    assert out["equal_predictions"] == out["rows"], out
    assert out["max_abs_probability_diff"] < 1e-6, out
    assert os.path.isdir(os.path.join(cluster.shared_dir, "connect-model", "stages"))
