"""A failing Horovod worker's exception reaches the driver's error, not only "non-zero status"."""
from __future__ import annotations

import pytest

from deepflash.backends import WorkerError, get_backend

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


def test_worker_exception_type_message_and_frames_reach_the_driver(spark, tmp_path):
    def _fails_on_rank_one():  # nested: cloudpickle ships it by value (tests are not importable on workers)
        import horovod.tensorflow as hvd

        hvd.init()
        if hvd.rank() == 1:
            raise ValueError("shard 7 has 3 columns, expected 64")
        return hvd.rank()

    with pytest.raises(WorkerError) as info:
        get_backend("horovod", 2).run(spark, _fails_on_rank_one, ())
    message = str(info.value)
    assert "rank 1 of 2 failed: ValueError: shard 7 has 3 columns, expected 64" in message
    assert "_fails_on_rank_one" in message  # the worker's own frame

    def _rank():
        import horovod.tensorflow as hvd

        hvd.init()
        return hvd.rank()

    # the workers are usable again: the next run starts a new Horovod job
    assert get_backend("horovod", 2).run(spark, _rank, ()) == [0, 1]


def test_a_rank_failing_in_a_collective_stops_the_others(spark):
    def _fails_after_a_collective():
        import horovod.tensorflow as hvd
        import numpy as np

        hvd.init()
        hvd.allreduce(np.ones(3), op=hvd.Sum, name="first")
        if hvd.rank() == 0:
            raise RuntimeError("rank 0 gave up")
        hvd.allreduce(np.ones(3), op=hvd.Sum, name="second")  # rank 0 never joins
        return hvd.rank()

    with pytest.raises(WorkerError, match="rank 0 of 2 failed: RuntimeError: rank 0 gave up"):
        get_backend("horovod", 2).run(spark, _fails_after_a_collective, ())


@pytest.mark.connect
def test_a_successful_run_returns_every_rank_in_order(spark):
    def rank_and_env():
        import os

        import horovod.tensorflow as hvd

        hvd.init()
        return hvd.rank(), hvd.size(), hvd.local_size(), os.getpid()

    first = get_backend("horovod", 2).run(spark, rank_and_env, ())
    assert [r[:3] for r in first] == [(0, 2, 2), (1, 2, 2)]
    second = get_backend("horovod", 2).run(spark, rank_and_env, ())
    # the ranks ran in Spark's reused Python workers, not in fresh interpreters
    assert {r[3] for r in second} == {r[3] for r in first}


def test_workers_reused_by_jobs_of_another_size_still_allreduce(spark, digits, tmp_path):
    """Spark reuses the Python workers of a 1-process fit for the next 2-process fit: Horovod's
    cached gradient allreduce, traced with size 1, must not be reused there (it would skip the
    allreduce and the other rank would wait forever)."""
    import signal

    from deepflash import KerasEstimator

    train, _ = digits

    def give_up(*_):
        spark.sparkContext.cancelAllJobs()
        raise TimeoutError("the 2-process fit hung after a 1-process fit in the same workers")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(300)
    try:
        for num_proc in (1, 2, 1, 2):
            model = KerasEstimator(layers="simple", epochs=1, backend="horovod", numProc=num_proc, seed=1,
                                   storePath=str(tmp_path / "store")).fit(train)
            assert len(model.fitInfo["rows_read_per_rank"]) == num_proc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
