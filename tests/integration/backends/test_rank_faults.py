"""Faults of the barrier backend's rank processes on local[2]: a rank that dies or hangs fails the
fit within ``workerTimeout`` with a WorkerError naming it, and no rank process outlives its task.

Each rank function writes its own pid to a file the test reads, so that every process check is on
a pid of a process the test started.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from deepflash.backends import WorkerError, get_backend
from helpers import gone_within

TIMEOUT = 8.0


def _pids(folder, n: int, seconds: float = 60.0) -> dict[int, int]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = {int(p.stem.split("-")[1]): int(p.read_text()) for p in folder.glob("rank-*.pid") if p.read_text()}
        if len(found) >= n:
            return found
        time.sleep(0.2)
    raise AssertionError(f"the ranks wrote {sorted(folder.glob('rank-*.pid'))} pid files, expected {n}")


def _waiting_ranks(folder, fault: str):
    """A rank function: every rank writes its pid; rank 1 then dies (``fault="die"``) or stops
    itself (``"hang"``) while rank 0 waits, as in the collective's cluster formation, for a peer
    that never comes."""
    path = str(folder)

    def rank_fn():
        rank = int(os.environ["DEEPFLASH_RANK"])
        with open(os.path.join(path, f"rank-{rank}.pid"), "w") as f:
            f.write(str(os.getpid()))
        if rank == 1:
            time.sleep(1.0)
            with open(os.path.join(path, "fault.time"), "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL if fault == "die" else signal.SIGSTOP)
        time.sleep(600)

    return rank_fn


@pytest.mark.slow
@pytest.mark.connect
@pytest.mark.parametrize("fault, expected", [
    ("die", r"rank 1 of 2 failed: RuntimeError: the training process of rank 1 ended without a result "
            r"\(exit code -9\)"),
    ("hang", r"rank 1 of 2 failed: TimeoutError: the training process of rank 1 \(pid \d+\) gave no sign of life"),
])
def test_a_rank_that_dies_or_hangs_fails_the_fit_within_the_timeout_and_leaves_no_process(spark, tmp_path, fault,
                                                                                          expected):
    with pytest.raises(WorkerError, match=expected):
        get_backend("barrier", 2, timeout=TIMEOUT).run(spark, _waiting_ranks(tmp_path, fault), ())
    seconds = time.time() - float((tmp_path / "fault.time").read_text())
    pids = _pids(tmp_path, 2, seconds=1)
    print(f"\n{fault}: rank 1's fault to the driver's WorkerError in {seconds:.1f}s (workerTimeout={TIMEOUT:g}s)")
    # A death is seen within a beat or two; a hang once the timeout has passed.
    assert seconds < (TIMEOUT + 5 if fault == "hang" else 5)
    for rank, pid in pids.items():
        assert gone_within(pid, 5), f"rank {rank}'s process {pid} outlived its task"


@pytest.mark.slow
def test_a_cancelled_job_leaves_no_rank_process(spark, tmp_path):
    """The job is cancelled from the driver (as a search timeout or a user's interrupt does): Spark
    kills the tasks' Python workers, and their rank processes exit with them."""
    sc = spark.sparkContext
    errors = []

    def fit():
        sc.setJobGroup("deepflash-cancel-test", "cancelled by the test", interruptOnCancel=True)
        try:
            get_backend("barrier", 2, timeout=120).run(spark, _waiting_ranks(tmp_path, "none"), ())
        except Exception as e:  # noqa: BLE001  (the cancellation's error is what this thread expects)
            errors.append(e)

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    pids = _pids(tmp_path, 2)
    sc.cancelJobGroup("deepflash-cancel-test")
    thread.join(60)
    assert not thread.is_alive() and errors, "the cancelled fit did not end"
    for rank, pid in pids.items():
        assert gone_within(pid, 15), f"rank {rank}'s process {pid} outlived its cancelled task"
