"""The gradient all-reduce's accounting: the meter's sums and per-step figures, and the PyTorch
communicator recording one step per all-reduce (one rank alone, Gloo)."""
from __future__ import annotations

import importlib.util
import socket
import time

import pytest

from deepflash.backends.base import Communicator
from deepflash.backends.collective_stats import AllReduceMeter, AllReduceStats

HAS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")


def test_the_meter_sums_steps_and_divides_per_step():
    meter = AllReduceMeter()
    assert meter.stats() == AllReduceStats()
    assert meter.stats().seconds_per_step == meter.stats().bytes_per_step == 0.0   # no step: no division by 0
    for seconds in (0.001, 0.002, 0.003):
        meter.record(seconds, 0.0005, 420_000)
    stats = meter.stats()
    assert stats.steps == 3 and stats.bytes == 1_260_000
    assert stats.seconds_per_step == pytest.approx(0.002)
    assert stats.copy_seconds_per_step == pytest.approx(0.0005)
    assert stats.bytes_per_step == 420_000
    assert stats.describe() == "2.0 ms/step, 0.42 MB/step over 3 steps"
    meter.record(0.001, 0.0, 420_000)
    assert stats.steps == 3, "stats() is a snapshot"


def test_a_communicator_that_does_not_time_its_all_reduce_says_so():
    assert Communicator().allreduce_stats() is None


class _SlowAllReduce:
    """``torch.distributed`` whose all_reduce takes 20 ms (and changes nothing: one rank)."""

    def __init__(self, dist):
        self.dist = dist

    def all_reduce(self, tensor):
        time.sleep(0.02)
        self.dist.all_reduce(tensor)


@HAS_TORCH
def test_every_gradient_average_is_one_timed_step_of_its_flat_buffer(monkeypatch):
    import torch
    import torch.distributed as dist

    from deepflash.backends.torch_collectives import TorchCommunicator

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in (("DEEPFLASH_MASTER", f"127.0.0.1:{port}"), ("DEEPFLASH_RANK", "0"), ("DEEPFLASH_SIZE", "1"),
                        ("DEEPFLASH_WORKER_TIMEOUT", "20")):
        monkeypatch.setenv(name, value)
    comm = TorchCommunicator()
    try:
        grads = [torch.ones(2, 3), None, torch.ones(4, dtype=torch.float64)]
        comm.average(grads)
        comm.average([None])   # nothing to reduce: no step
        stats = comm.allreduce_stats()
        # torch.cat promotes to float64: 10 values of 8 bytes
        assert stats.steps == 1 and stats.bytes == 80
        comm.dist = _SlowAllReduce(dist)
        comm.average(grads)
        stats = comm.allreduce_stats()
        assert stats.steps == 2 and stats.bytes_per_step == 80
        assert 0.02 <= stats.seconds < 1.0   # the sleep falls inside the timed call...
        assert stats.copy_seconds < 0.02     # ...and not in the copies around it
    finally:
        dist.destroy_process_group()
