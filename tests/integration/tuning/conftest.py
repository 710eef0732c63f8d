from __future__ import annotations

import time

import pytest


@pytest.fixture()
def slots_free(spark):
    """Asserts that a barrier stage of two tasks (which starts only when both of local[2]'s slots
    are free) runs within ``within`` seconds: the trials a search's timeout interrupted no longer
    hold their slots. Works on Connect too (no status tracker needed)."""
    from deepflash.spark.tasks import run_barrier

    def check(within: float = 30.0) -> None:
        started = time.time()
        assert run_barrier(spark, lambda i: i * i, 2) == [0, 1]
        assert time.time() - started < within, "the interrupted trials still held the task slots"

    return check
