"""Runs ``numProc`` Horovod processes as one Spark barrier stage, inside Spark's own Python workers.

Each rank is a barrier task. The tasks learn their peers from ``BarrierTaskContext.getTaskInfos()``
and derive one Horovod host assignment from it (``horovod.runner``'s rule: the ranks of a host are
contiguous); the task of partition 0 serves Horovod's Gloo rendezvous (``RendezvousServer``) and
shares its port with ``allGather``. Every task then sets the variables Horovod's own launchers set
(``HOROVOD_RANK``/``SIZE``/``LOCAL_RANK``/``LOCAL_SIZE``/``CROSS_RANK``/``CROSS_SIZE``,
``HOROVOD_HOSTNAME``, ``HOROVOD_GLOO_RENDEZVOUS_ADDR``/``PORT``, ``HOROVOD_GLOO_IFACE``) and calls
the rank function, which runs ``hvd.init()``.

Against ``horovod.spark.run`` this saves a fresh interpreter per rank (TensorFlow's import, a
driver service, a task service and an SSH-less exec per rank): Spark reuses its Python workers, so
TensorFlow is already imported from the previous fit. GPUs come from the task's resources (see
:mod:`deepflash.devices`). A rank that raises does not fail its task (a failed barrier task makes
Spark retry the whole stage); it returns its traceback, shuts Horovod down so the other ranks stop
too, and the driver raises :class:`~deepflash.backends.base.WorkerError`.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from deepflash.backends.base import Backend, WorkerError, register

log = logging.getLogger("deepflash")

# Frames of a worker's traceback carried into the driver's error (the full text is logged).
ERROR_FRAMES = 6
# Errors a rank raises because another rank failed first; the driver reports the first cause.
_FOLLOW_ON = ("HorovodInternalError", "Horovod has been shut down", "Connection closed by peer",
              "Connection reset by peer", "Gloo")
_HOROVOD_ENV = ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK",
                "HOROVOD_CROSS_SIZE", "HOROVOD_HOSTNAME", "HOROVOD_GLOO_RENDEZVOUS_ADDR",
                "HOROVOD_GLOO_RENDEZVOUS_PORT", "HOROVOD_CONTROLLER", "HOROVOD_CPU_OPERATIONS", "HOROVOD_GLOO_IFACE")


def available_slots(spark) -> int:
    """Task slots the cluster offers right now: total cores divided by ``spark.task.cpus``."""
    sc = spark.sparkContext
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    return max(1, sc.defaultParallelism // max(task_cpus, 1))


@dataclass(frozen=True)
class Slot:
    """One rank's place in the job, as Horovod's launchers define it."""

    host: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    cross_rank: int
    cross_size: int


def assign_slots(task_hosts: list[str]) -> list[Slot]:
    """The slot of each barrier task (indexed by partition), from the host each task runs on.

    Ranks are numbered host by host (hosts in order of their first task), so that a host's ranks
    are contiguous as ``horovod.runner.common.util.hosts.get_host_assignments`` makes them; the
    cross rank of a local rank is its host's position among the hosts that have that local rank.
    """
    hosts: list[str] = []
    for host in task_hosts:
        if host not in hosts:
            hosts.append(host)
    tasks_of = {h: [i for i, t in enumerate(task_hosts) if t == h] for h in hosts}
    slots: dict[int, Slot] = {}
    rank = 0
    for host in hosts:
        for local_rank, task in enumerate(tasks_of[host]):
            peers = [h for h in hosts if len(tasks_of[h]) > local_rank]
            slots[task] = Slot(host=host, rank=rank, size=len(task_hosts), local_rank=local_rank,
                               local_size=len(tasks_of[host]), cross_rank=peers.index(host), cross_size=len(peers))
            rank += 1
    return [slots[i] for i in range(len(task_hosts))]


def _interface_of(host: str) -> str | None:
    """The network interface that holds ``host``'s address on this machine, for Gloo to bind."""
    try:
        import psutil

        address = socket.gethostbyname(host)
        for name, addrs in psutil.net_if_addrs().items():
            if any(a.family == socket.AF_INET and a.address == address for a in addrs):
                return name
    except (OSError, ImportError):
        pass
    return None


def forwarded_env() -> dict[str, str]:
    """The driver's ``DEEPFLASH_*`` and ``HOROVOD_*`` variables (e.g. ``HOROVOD_GLOO_TIMEOUT_SECONDS``),
    which every rank sees, as under Horovod's own launchers; the per-rank ones are set per task."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(("DEEPFLASH_", "HOROVOD_")) and k not in _HOROVOD_ENV}


@dataclass(frozen=True)
class RankOutcome:
    """What one barrier task sends back: its rank's result, or its error."""

    rank: int
    value: Any = None
    error: str | None = None
    failed_at: float = 0.0


class _RankTask:
    """The barrier task body: rendezvous, Horovod environment, the rank function, clean-up."""

    def __init__(self, fn: Callable[..., Any], args: tuple, env: dict[str, str]):
        self.fn, self.args, self.env = fn, args, env

    def __call__(self, index: int, _rows) -> list[RankOutcome]:
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        hosts = [info.address.rsplit(":", 1)[0] for info in ctx.getTaskInfos()]
        slots = assign_slots(hosts)
        slot = slots[index]
        server = None
        if index == 0:
            from horovod.runner.common.util.hosts import SlotInfo
            from horovod.runner.http.http_server import RendezvousServer

            server = RendezvousServer()
            port = server.start()
            server.init([SlotInfo(hostname=s.host, rank=s.rank, local_rank=s.local_rank, cross_rank=s.cross_rank,
                                  size=s.size, local_size=s.local_size, cross_size=s.cross_size)
                         for s in slots])
            message = str(port)
        else:
            message = ""
        port = ctx.allGather(message)[0]
        saved = {k: os.environ.get(k) for k in (*_HOROVOD_ENV, *self.env)}
        os.environ.update(self.env)
        os.environ.update({
            "HOROVOD_RANK": str(slot.rank), "HOROVOD_SIZE": str(slot.size),
            "HOROVOD_LOCAL_RANK": str(slot.local_rank), "HOROVOD_LOCAL_SIZE": str(slot.local_size),
            "HOROVOD_CROSS_RANK": str(slot.cross_rank), "HOROVOD_CROSS_SIZE": str(slot.cross_size),
            "HOROVOD_HOSTNAME": slot.host, "HOROVOD_GLOO_RENDEZVOUS_ADDR": hosts[0],
            "HOROVOD_GLOO_RENDEZVOUS_PORT": port, "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo"})
        iface = _interface_of(slot.host)
        if iface:
            os.environ["HOROVOD_GLOO_IFACE"] = iface
        try:
            outcome = RankOutcome(rank=slot.rank, value=self.fn(*self.args))
        except BaseException as e:  # noqa: BLE001  (reported to the driver; see the module docstring)
            outcome = RankOutcome(rank=slot.rank, error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                                  failed_at=time.time())
        finally:
            _shutdown_horovod()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        ctx.barrier()  # every rank is done with the rendezvous before it closes
        if server is not None:
            server.stop()
        return [outcome]


def _shutdown_horovod() -> None:
    try:
        import horovod.tensorflow as hvd

        if hvd.is_initialized():
            hvd.shutdown()
    except Exception as e:  # noqa: BLE001  (the rank's own result or error matters more)
        log.debug("horovod shutdown: %s", e)


def first_failure(outcomes: list[RankOutcome]) -> RankOutcome | None:
    """The error to report: a rank's own failure before the ones it caused in the other ranks."""
    failed = [o for o in outcomes if o.error is not None]
    if not failed:
        return None
    return min(failed, key=lambda o: (any(m in o.error.splitlines()[0] for m in _FOLLOW_ON), o.failed_at, o.rank))


@register("horovod")
class HorovodBackend(Backend):
    distributed = True

    def check(self, spark) -> None:
        slots = available_slots(spark)
        if self._num_proc > slots:
            raise ValueError(
                f"`numProc` == {self._num_proc}, but the cluster has {slots} task slot(s) "
                f"(spark.default.parallelism / spark.task.cpus); every Horovod process needs its own slot, "
                f"so lower numProc to <= {slots} or add executors")
        try:
            import horovod.tensorflow.keras  # noqa: F401
            from horovod.runner.http.http_server import RendezvousServer  # noqa: F401
        except ImportError as e:
            raise ImportError(f"backend='horovod' needs Horovod 0.28.1 built with TensorFlow and Gloo: {e}; "
                              "run `gradle setup`, or use backend='local'") from None

    def run(self, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        from pyspark.sql import SparkSession

        sc = SparkSession.getActiveSession().sparkContext
        n = self._num_proc
        task = _RankTask(fn, args, forwarded_env())
        try:
            outcomes = sc.parallelize(range(n), n).barrier().mapPartitionsWithIndex(task).collect()
        except Exception as e:  # the task itself failed: a rank's Python worker exited or was killed
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WorkerError(f"a training process of {n} ended without reporting (its Python worker exited "
                              f"or was killed; see the executor's log): {reason}") from e
        failure = first_failure(outcomes)
        if failure is not None:
            for o in outcomes:
                if o.error is not None:
                    log.error("training process rank %d failed:\n%s", o.rank, o.error)
            first_line = failure.error.splitlines()[0]
            tail = "\n".join(failure.error.rstrip().splitlines()[-2 * ERROR_FRAMES:])
            raise WorkerError(f"training process rank {failure.rank} of {n} failed: {first_line}\n"
                              f"last frames on the worker:\n{tail}")
        return [o.value for o in sorted(outcomes, key=lambda o: o.rank)]
