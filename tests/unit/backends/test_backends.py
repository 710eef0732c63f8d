"""The backends' pure parts: slot assignment from barrier task hosts, which error to report, each
backend's communicator."""
from __future__ import annotations

import pytest

from deepflash.backends.horovod import FOLLOW_ON
from deepflash.backends.stage import RankOutcome, Slot, assign_slots, first_failure


def test_one_host_gets_consecutive_local_ranks():
    assert assign_slots(["h", "h"]) == [Slot("h", 0, 2, 0, 2, 0, 1), Slot("h", 1, 2, 1, 2, 0, 1)]


@pytest.mark.horovod
def test_interleaved_tasks_get_host_contiguous_ranks_as_horovod_assigns_them():
    from horovod.runner.common.util.hosts import HostInfo, get_host_assignments

    tasks = ["a", "b", "a", "c", "b"]  # barrier tasks by partition id
    slots = assign_slots(tasks)
    assert [s.host for s in slots] == tasks
    assert sorted(s.rank for s in slots) == list(range(5))
    expected = get_host_assignments([HostInfo("a", 2), HostInfo("b", 2), HostInfo("c", 1)], 5)
    by_rank = {s.rank: s for s in slots}
    for e in expected:
        s = by_rank[e.rank]
        assert (s.host, s.local_rank, s.local_size, s.cross_rank, s.cross_size, s.size) == \
               (e.hostname, e.local_rank, e.local_size, e.cross_rank, e.cross_size, e.size)


def test_the_reported_failure_is_the_cause_not_its_consequences():
    follow_on = RankOutcome(rank=0, error="HorovodInternalError: Horovod has been shut down.\n...", failed_at=1.0)
    cause = RankOutcome(rank=1, error="ValueError: bad shard\n...", failed_at=2.0)
    assert first_failure([follow_on, cause], FOLLOW_ON) is cause
    assert first_failure([follow_on, cause]) is follow_on  # without the markers: the earliest
    assert first_failure([RankOutcome(rank=0, value=1), RankOutcome(rank=1, value=2)]) is None
    early = RankOutcome(rank=1, error="KeyError: x", failed_at=1.0)
    late = RankOutcome(rank=0, error="KeyError: y", failed_at=3.0)
    assert first_failure([late, early]) is early


def test_a_dead_rank_process_outranks_the_collective_errors_it_caused_but_not_a_raised_error():
    from deepflash.backends.barrier import DIED
    from deepflash.backends.barrier import FOLLOW_ON as TF_FOLLOW_ON

    aborted = RankOutcome(rank=0, error="UnavailableError: Graph execution error:\n...", failed_at=1.0)
    dead = RankOutcome(rank=1, error="RuntimeError: the training process of rank 1 ended without a result "
                                     "(exit code 1); its last stderr lines:\n...", failed_at=2.0)
    raised = RankOutcome(rank=0, error="ValueError: bad shard\n...", failed_at=3.0)
    assert first_failure([aborted, dead], TF_FOLLOW_ON, DIED) is dead
    assert first_failure([dead, raised], TF_FOLLOW_ON, DIED) is raised


def test_barrier_rank_environment_names_every_worker_in_rank_order():
    import json

    from deepflash.backends.barrier import rank_env

    slot = Slot("h2", 1, 2, 0, 1, 1, 2)
    env = rank_env(["h1:1000", "h2:2000"], slot, gpus=["3"])
    assert json.loads(env["TF_CONFIG"]) == {"cluster": {"worker": ["h1:1000", "h2:2000"]},
                                             "task": {"type": "worker", "index": 1}}
    assert (env["DEEPFLASH_RANK"], env["DEEPFLASH_SIZE"], env["DEEPFLASH_LOCAL_RANK"], env["DEEPFLASH_LOCAL_SIZE"]) == \
           ("1", "2", "0", "1")
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert "CUDA_VISIBLE_DEVICES" not in rank_env(["h1:1000"], Slot("h1", 0, 1, 0, 1, 0, 1), gpus=[])


def test_barrier_free_port_is_bindable():
    import socket

    from deepflash.backends.barrier import free_port

    port = free_port()
    with socket.socket() as s:
        s.bind(("", port))


def test_each_backend_names_its_communicator_and_it_pickles_by_reference():
    import pickle

    from deepflash.backends import Communicator, get_backend
    from deepflash.backends.barrier import MultiWorkerMirroredCommunicator
    from deepflash.backends.horovod import HorovodCommunicator

    assert get_backend("local", 1).communicator() is Communicator
    assert get_backend("horovod", 2).communicator() is HorovodCommunicator
    assert get_backend("barrier", 2).communicator() is MultiWorkerMirroredCommunicator
    for cls in (HorovodCommunicator, MultiWorkerMirroredCommunicator):
        assert issubclass(cls, Communicator)
        data = pickle.dumps(cls)
        assert cls.__name__.encode() in data and len(data) < 200 and pickle.loads(data) is cls


def test_the_single_process_communicator_shares_nothing():
    import numpy as np

    from deepflash.backends import Communicator

    comm = Communicator()
    assert (comm.rank, comm.size, comm.local_rank, comm.local_size) == (0, 1, 0, 1)
    values = np.array([1.0, 2.0])
    assert comm.sum(values) is values and comm.callbacks() == [] and comm.validation_steps(10, 4) is None
    optimizer = object()
    assert comm.wrap_optimizer(optimizer) is optimizer
    assert comm.dataset(lambda: "batches") == "batches"
    with comm.scope():
        comm.barrier()
