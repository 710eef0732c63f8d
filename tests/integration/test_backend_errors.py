"""A failing Horovod worker's exception reaches the driver's error, not only "non-zero status"."""
from __future__ import annotations

import os

import pytest

from deepflash import fs
from deepflash.backends import WorkerError, get_backend

pytestmark = pytest.mark.slow


def test_worker_exception_type_message_and_frames_reach_the_driver(spark, tmp_path):
    def _fails_on_rank_one():  # nested: cloudpickle ships it by value (tests are not importable on workers)
        import horovod.tensorflow as hvd

        hvd.init()
        if hvd.rank() == 1:
            raise ValueError("shard 7 has 3 columns, expected 64")
        return hvd.rank()

    errors_to = fs.qualify(str(tmp_path / "errors"))
    with pytest.raises(WorkerError) as info:
        get_backend("horovod", 2).run(_fails_on_rank_one, (), errors_to=errors_to)
    message = str(info.value)
    assert "rank 1 of 2 failed: ValueError: shard 7 has 3 columns, expected 64" in message
    assert "_fails_on_rank_one" in message  # the worker's own frame
    assert not os.path.exists(tmp_path / "errors")  # the reports are removed once read


def test_a_successful_run_returns_every_rank_in_order(spark, tmp_path):
    def rank():
        import horovod.tensorflow as hvd

        hvd.init()
        return hvd.rank()

    assert get_backend("horovod", 2).run(rank, (), errors_to=fs.qualify(str(tmp_path / "e"))) == [0, 1]
