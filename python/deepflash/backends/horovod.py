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
:mod:`deepflash.worker.devices`). A rank that raises does not fail its task (a failed barrier task makes
Spark retry the whole stage); it returns its traceback, shuts Horovod down so the other ranks stop
too, and the driver raises :class:`~deepflash.backends.base.WorkerError`.

Inside each rank, :class:`HorovodCommunicator` connects the training loop to Horovod's Keras
bindings: averaged gradients, rank 0's initial weights, averaged metrics.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from deepflash.backends.base import Communicator, register
from deepflash.backends.stage import Placement, RankOutcome, RankTask, StageBackend, forwarded_env, run_stage
from deepflash.requirements import MissingDependencyError

log = logging.getLogger("deepflash")

# Errors a rank raises because another rank failed first; the driver reports the first cause.
FOLLOW_ON = ("HorovodInternalError", "Horovod has been shut down", "Connection closed by peer",
              "Connection reset by peer", "Gloo")
_HOROVOD_ENV = ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK",
                "HOROVOD_CROSS_SIZE", "HOROVOD_HOSTNAME", "HOROVOD_GLOO_RENDEZVOUS_ADDR",
                "HOROVOD_GLOO_RENDEZVOUS_PORT", "HOROVOD_CONTROLLER", "HOROVOD_CPU_OPERATIONS", "HOROVOD_GLOO_IFACE")


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


class _RankTask(RankTask):
    """The barrier task body: rendezvous, Horovod environment, the rank function, clean-up."""

    def run_rank(self, index: int, place: Placement) -> RankOutcome:
        ctx, hosts, slots, slot = place.ctx, place.hosts, place.slots, place.slot
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
            outcome = RankOutcome.failure(slot.rank, e)
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
        return outcome


def _shutdown_horovod() -> None:
    try:
        import horovod.tensorflow as hvd

        if hvd.is_initialized():
            hvd.shutdown()
    except Exception as e:  # noqa: BLE001  (the rank's own result or error matters more)
        log.debug("horovod shutdown: %s", e)


def horovod_missing(reason: str) -> str:
    """Why backend='horovod' cannot run here, and what can: Horovod builds only against TensorFlow
    2.15 with Keras 2 (the classic profile); on Keras 3 stacks (the modern profile, current
    Databricks runtimes) the barrier backend trains data-parallel with TensorFlow alone."""
    from deepflash.networks.keras_compat import keras_version

    try:
        keras = keras_version()
    except ImportError:
        keras = "none"
    return (f"backend='horovod' needs Horovod 0.28.1 built with TensorFlow and Gloo, which this Python "
            f"({sys.executable}, Keras {keras}) cannot import: {reason}. Horovod exists only on the classic "
            "profile (TensorFlow 2.15, Keras 2: `gradle setup`, or `pip install 'deepflash[horovod]'` onto "
            "TensorFlow 2.15); the modern profile and Keras 3 platforms have backend='barrier' "
            "(data-parallel with TensorFlow's own collectives) and backend='local'")


class HorovodCommunicator(Communicator):
    """Horovod's Keras bindings: averaged gradients, rank-0 weights broadcast, averaged metrics.

    Created in a rank of :class:`HorovodBackend` (whose task set Horovod's variables): it drops the
    graphs and layer names of earlier fits (Spark reuses its Python workers), runs ``hvd.init()``
    and then fixes the process's devices by its local rank.
    """

    def __init__(self, threads: int = 0) -> None:
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf

        tf.keras.backend.clear_session()
        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        self._barriers = 0
        super().__init__(threads)

    def wrap_optimizer(self, optimizer):
        # Horovod caches the tf.function that allreduces gradients by the optimizer's name, and
        # bakes "size > 1" into it when it is traced. Spark reuses its Python workers, so a worker
        # that ran a 1-process fit would skip the allreduce in a later 2-process fit (and the
        # other rank would wait forever). The job size in the name gives one trace per size.
        return self.hvd.DistributedOptimizer(optimizer, name=f"Distributed{type(optimizer).__name__}Size{self.size}")

    def callbacks(self) -> list:
        # Order matters: weights are synchronised first, metrics averaged before the early
        # stopping and LR callbacks read them, so every rank takes the same decisions.
        # Horovod's BroadcastGlobalVariablesCallback is not used: its broadcast is one tf.function
        # per process, traced once and keyed by the first fit's variable names, which do not match
        # a fresh rank's in a reused worker. Every rank starts from the same model bytes and the
        # same checkpoint (optimizer slots start at zero), so an eager broadcast of the weights at
        # the start keeps the guarantee without the cache.
        from deepflash.worker.sync import BroadcastInitialWeights

        return [BroadcastInitialWeights(self.hvd), self.hvd.callbacks.MetricAverageCallback()]

    def sum(self, values):
        return np.asarray(self.hvd.allreduce(np.asarray(values, np.float64), op=self.hvd.Sum,
                                             name="deepflash_sum"), np.float64)

    def barrier(self) -> None:
        # A broadcast from rank 0: no rank returns before rank 0 reached this point.
        self._barriers += 1
        self.hvd.broadcast(self._barriers, root_rank=0, name=f"deepflash_barrier_{self._barriers}")


@register("horovod")
class HorovodBackend(StageBackend):
    def communicator(self) -> type[Communicator]:
        return HorovodCommunicator

    def check(self, spark) -> None:
        super().check(spark)
        try:
            import horovod.tensorflow.keras  # noqa: F401
            from horovod.runner.http.http_server import RendezvousServer  # noqa: F401
        except ImportError as e:
            raise MissingDependencyError(horovod_missing(str(e))) from None

    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        task = _RankTask(fn, args, forwarded_env(("DEEPFLASH_", "HOROVOD_"), _HOROVOD_ENV))
        return run_stage(spark, task, self._num_proc, FOLLOW_ON, resources=self.training_resources(spark))
