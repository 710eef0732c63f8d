"""backend="barrier": TensorFlow's MultiWorkerMirroredStrategy in Spark barrier tasks, no Horovod.

Runs on both profiles (Keras 2 on the classic one, Keras 3 on the modern one). Exact resume and a
rank that crashes are in test_resume.py; the run across the test cluster's two workers is in
tests/cluster.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array

from deepflash import KerasEstimator
from deepflash.backends import WorkerError, get_backend
from helpers import accuracy

pytestmark = pytest.mark.slow

LAYERS = [{"type": "dense", "units": 64, "activation": "relu"}]


@pytest.fixture(scope="module")
def barrier_pipeline(digits, tmp_path_factory):
    train, _ = digits
    est = KerasEstimator(backend="barrier", numProc=2, layers=LAYERS, learningRate=0.01, batchSize=32, epochs=12,
                         seed=5, storePath=str(tmp_path_factory.mktemp("barrier-store")))
    return Pipeline(stages=[est]).fit(train)


def test_two_processes_reach_095_on_held_out_digits(barrier_pipeline, digits):
    _, test = digits
    model = barrier_pipeline.stages[-1]
    assert accuracy(barrier_pipeline.transform(test)) >= 0.95
    history = model.getHistory()
    assert len(history["loss"]) == 12 and history["loss"][-1] < history["loss"][0]
    assert model.fitInfo.rows_read_per_rank and len(model.fitInfo.rows_read_per_rank) == 2
    # each rank read its own half of the training rows
    rows = model.fitInfo.rows_read_per_rank
    assert all(r > 0 for r in rows) and abs(rows[0] - rows[1]) <= 0.2 * sum(rows), rows


def test_save_and_load_give_identical_predictions(barrier_pipeline, digits, tmp_path):
    _, test = digits
    barrier_pipeline.write().save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))

    def scores(m):
        return np.array([r["p"] for r in m.transform(test).select(vector_to_array("probability").alias("p")).collect()])

    np.testing.assert_array_equal(scores(barrier_pipeline), scores(loaded))


def test_too_few_slots_fail_before_any_job(spark, digits, tmp_path):
    est = KerasEstimator(backend="barrier", numProc=3, layers=LAYERS, storePath=str(tmp_path))
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    with pytest.raises(ValueError, match=r"`numProc` == 3, but the cluster has 2 task slot\(s\).*backend='barrier'"):
        est.fit(digits[0])
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) == jobs_before
    assert not os.listdir(tmp_path)


def test_a_rank_error_reaches_the_driver_with_its_frames(spark):
    def fails_on_rank_one():  # nested: cloudpickle ships it by value
        rank = int(os.environ["DEEPFLASH_RANK"])
        if rank == 1:
            raise ValueError("shard 7 has 3 columns, expected 64")
        return rank

    with pytest.raises(WorkerError) as info:
        get_backend("barrier", 2).run(fails_on_rank_one, ())
    assert "rank 1 of 2 failed: ValueError: shard 7 has 3 columns, expected 64" in str(info.value)
    assert "fails_on_rank_one" in str(info.value)


def test_every_rank_gets_its_own_process_and_tf_config(spark):
    def describe():
        return os.getpid(), json.loads(os.environ["TF_CONFIG"]), os.environ["DEEPFLASH_SIZE"]

    results = get_backend("barrier", 2).run(describe, ())
    (pid0, config0, size0), (pid1, config1, size1) = results
    assert pid0 != pid1 and os.getpid() not in (pid0, pid1)
    assert config0["cluster"] == config1["cluster"] and len(config0["cluster"]["worker"]) == 2
    assert [config0["task"]["index"], config1["task"]["index"]] == [0, 1]
    assert size0 == size1 == "2"


def test_a_process_that_dies_is_reported_with_its_last_stderr_lines(spark):
    def dies():
        import sys

        if os.environ["DEEPFLASH_RANK"] == "0":
            print("about to exit hard", file=sys.stderr, flush=True)
            os._exit(3)
        return 1

    with pytest.raises(WorkerError, match=r"(?s)rank 0 of 2 failed: .*ended without a result \(exit code 3\).*"
                                          r"about to exit hard"):
        get_backend("barrier", 2).run(dies, ())
