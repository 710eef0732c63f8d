"""backend="barrier": TensorFlow's MultiWorkerMirroredStrategy in Spark barrier tasks, no Horovod.

Runs on both profiles (Keras 2 on the classic one, Keras 3 on the modern one); the tests marked
``connect`` also run on a Spark Connect session (the barrier stage goes through the DataFrame API). Exact resume and a
rank that crashes are in test_resume.py; the run across the test cluster's two workers is in
tests/cluster.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array

from deepflash import KerasEstimator
from deepflash.backends import WorkerError, get_backend
from deepflash.backends.stage import RankOutcome, RankTask, run_stage
from helpers import accuracy

pytestmark = pytest.mark.slow

LAYERS = [{"type": "dense", "units": 64, "activation": "relu"}]


@pytest.fixture(scope="module")
def barrier_pipeline(digits, tmp_path_factory):
    train, _ = digits
    est = KerasEstimator(backend="barrier", numProc=2, layers=LAYERS, learningRate=0.01, batchSize=32, epochs=12,
                         seed=5, storePath=str(tmp_path_factory.mktemp("barrier-store")))
    return Pipeline(stages=[est]).fit(train)


@pytest.mark.connect
@pytest.mark.both_profiles(reason="MultiWorkerMirroredStrategy trains a Keras 2 or a Keras 3 network")
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


@pytest.mark.both_profiles(reason="a Keras 2 or a Keras 3 network saved by rank 0")
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


@pytest.mark.connect
def test_a_rank_error_reaches_the_driver_with_its_frames(spark):
    def fails_on_rank_one():  # nested: cloudpickle ships it by value
        rank = int(os.environ["DEEPFLASH_RANK"])
        if rank == 1:
            raise ValueError("shard 7 has 3 columns, expected 64")
        return rank

    with pytest.raises(WorkerError) as info:
        get_backend("barrier", 2).run(spark, fails_on_rank_one, ())
    assert "rank 1 of 2 failed: ValueError: shard 7 has 3 columns, expected 64" in str(info.value)
    assert "fails_on_rank_one" in str(info.value)


@pytest.mark.connect
@pytest.mark.both_profiles(reason="TF_CONFIG as each TensorFlow reads it")
def test_every_rank_gets_its_own_process_and_tf_config(spark):
    def describe():
        return os.getpid(), json.loads(os.environ["TF_CONFIG"]), os.environ["DEEPFLASH_SIZE"]

    results = get_backend("barrier", 2).run(spark, describe, ())
    (pid0, config0, size0), (pid1, config1, size1) = results
    assert pid0 != pid1 and os.getpid() not in (pid0, pid1)
    assert config0["cluster"] == config1["cluster"] and len(config0["cluster"]["worker"]) == 2
    assert [config0["task"]["index"], config1["task"]["index"]] == [0, 1]
    assert size0 == size1 == "2"


def _spares() -> dict[int, int]:
    """The warm spares of this host: the Python worker that started each, to the spare's pid."""
    import glob
    import tempfile

    found = {}
    for key in glob.glob(os.path.join(tempfile.gettempdir(), "deepflash-rank-*", "key")):
        try:
            with open(key) as f:
                pid = json.load(f)["pid"]
        except (OSError, ValueError):
            continue
        found[int(os.path.basename(os.path.dirname(key)).split("-")[2])] = int(pid)
    return found


def test_a_second_fit_runs_its_ranks_in_the_warm_spares_the_first_left(spark, monkeypatch):
    """Each rank's task leaves a warm spare in its Python worker (TensorFlow imported); the next
    barrier stage's tasks, in the same two workers, run their ranks in them."""
    monkeypatch.setenv("DEEPFLASH_WARM_RANKS", "1")  # the suite turns spares off elsewhere

    def where():
        return os.getpid(), os.getppid(), "tensorflow" in sys.modules

    first = get_backend("barrier", 2).run(spark, where, ())
    spares = _spares()
    workers = {ppid for _, ppid, _ in first}
    assert workers <= set(spares), f"the ranks' workers {workers} left no spares: {spares}"
    second = get_backend("barrier", 2).run(spark, where, ())
    try:
        for pid, ppid, imported in second:
            if ppid in workers:
                assert pid == spares[ppid], f"rank process {pid} of worker {ppid} is not its spare {spares[ppid]}"
                assert imported  # before the rank began
        assert {ppid for _, ppid, _ in second} & workers, "no rank ran in a worker of the first stage"
    finally:
        for pid in _spares().values():
            try:
                os.killpg(pid, 9)
            except OSError:
                pass


@pytest.mark.connect
def test_a_process_that_dies_is_reported_with_its_last_stderr_lines(spark):
    def dies():
        import sys

        if os.environ["DEEPFLASH_RANK"] == "0":
            print("about to exit hard", file=sys.stderr, flush=True)
            os._exit(3)
        return 1

    with pytest.raises(WorkerError, match=r"(?s)rank 0 of 2 failed: .*ended without a result \(exit code 3\).*"
                                          r"about to exit hard"):
        get_backend("barrier", 2).run(spark, dies, ())


@pytest.mark.connect
def test_a_task_that_raises_before_its_rank_reports_names_the_workers_exception(spark):
    class Raises(RankTask):  # nested: cloudpickle ships it by value
        def run_rank(self, index, place):
            if place.slot.rank == 1:
                raise KeyError("feature column 'px9' is missing in the shard")
            return RankOutcome(rank=place.slot.rank, value=index)

    with pytest.raises(WorkerError, match=r"^KeyError: \"feature column 'px9' is missing in the shard\" \(raised in "
                                          r"the Python worker of a training process of 2, before its rank"):
        run_stage(spark, Raises(None, (), {}), 2)


@pytest.mark.connect
def test_a_python_worker_that_dies_is_reported_as_ended_without_reporting(spark):
    class Dies(RankTask):
        def run_rank(self, index, place):
            if place.slot.rank == 0:
                os._exit(7)
            return RankOutcome(rank=place.slot.rank, value=index)

    with pytest.raises(WorkerError, match=r"^a training process of 2 ended without reporting \(its Python worker "
                                          r"exited or was killed"):
        run_stage(spark, Dies(None, (), {}), 2)


@pytest.mark.connect
def test_ranks_report_their_values_in_rank_order(spark):
    class Values(RankTask):
        def run_rank(self, index, place):
            return RankOutcome(rank=place.slot.rank, value=(place.slot.rank, place.slot.size, os.getpid()))

    values = run_stage(spark, Values(None, (), {}), 2)
    assert [v[:2] for v in values] == [(0, 2), (1, 2)] and values[0][2] != values[1][2]
    with pytest.raises(ValueError, match="needs a SparkSession, got None"):
        run_stage(None, Values(None, (), {}), 2)
