"""``backend="barrier"``: data-parallel training with TensorFlow's own collectives, no Horovod.

The ranks are one Spark barrier stage, as for ``horovod``. Each task learns its peers from
``BarrierTaskContext.getTaskInfos()``, picks a free port on its host and shares ``host:port`` with
``allGather``; from the list every task writes the ``TF_CONFIG`` of a
``tf.distribute.MultiWorkerMirroredStrategy`` worker (``{"cluster": {"worker": [...]}, "task":
{"type": "worker", "index": rank}}``) and starts its rank in a Python process of its own
(:mod:`deepflash.backends.rank_process`), like Spark's TorchDistributor: TensorFlow configures its
collectives only before its runtime starts, and a reused Spark Python worker has started it in an
earlier fit. The strategy then all-reduces gradients (ring all-reduce over gRPC) and the metrics.
That process is a warm spare where the executor has one (:mod:`deepflash.backends.rank_launch`):
started when the previous rank ended, it has already imported the framework and the training loop.

GPUs: the task's ``TaskContext.resources()["gpu"]`` addresses become the child's
``CUDA_VISIBLE_DEVICES``, so a rank sees exactly its own GPUs.

The child's stderr (epoch logs, TensorFlow's messages) goes to the executor's stderr as it comes;
the last lines travel with the error when the child dies without a result. A rank that raises
returns its traceback. Every wait is bounded (:mod:`deepflash.backends.watch`): a rank whose
process dies, hangs or loses its task makes every other rank's task kill its process within
``workerTimeout`` seconds (at once for a death), the driver raises a ``WorkerError`` naming the
first rank that failed, and no training process outlives its task.

Inside each rank, :class:`MultiWorkerMirroredCommunicator` connects the training loop to the strategy.
"""
from __future__ import annotations

import contextlib
import math
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from deepflash.backends.base import DEFAULT_TIMEOUT, Communicator, register
from deepflash.backends.rank_launch import RankProcess, StderrForwarder, split_env, warm_enabled
from deepflash.backends.stage import Placement, RankOutcome, RankTask, StageBackend, forwarded_env, run_stage
from deepflash.backends.watch import BEAT_SECONDS, PeerWatch
from deepflash.worker.devices import TASK_GPUS_ENV

# Errors a rank raises because another rank failed first; the driver reports the first cause.
FOLLOW_ON = ("UnavailableError", "CancelledError", "Collective ops is aborted", "Socket closed",
             "failed to connect", "peer")
# A rank process that ended without a result: the cause unless a rank raised an error of its own.
DIED = ("ended without a result",)
# Per-rank variables the child receives; the driver's DEEPFLASH_* ones are forwarded as they are.
RANK_ENV = ("TF_CONFIG", "DEEPFLASH_RANK", "DEEPFLASH_SIZE", "DEEPFLASH_LOCAL_RANK", "DEEPFLASH_LOCAL_SIZE",
            "DEEPFLASH_PARENT_PID", "DEEPFLASH_HEARTBEAT", "DEEPFLASH_MASTER", "DEEPFLASH_WORKER_TIMEOUT",
            TASK_GPUS_ENV)
STDERR_TAIL = 40


def free_port() -> int:
    """A TCP port that is free on this host now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def tf_config(workers: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` among ``workers`` (``host:port``), as JSON."""
    import json

    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}})


def rank_env(workers: list[str], slot, gpus: list[str]) -> dict[str, str]:
    """The variables that make the child process rank ``slot.rank`` of a multi-worker job
    (``workers`` in rank order, so the rank is the worker's index). ``TF_CONFIG`` serves
    TensorFlow; ``DEEPFLASH_MASTER`` (rank 0's ``host:port``) is where ``torch.distributed`` and
    ``jax.distributed`` meet."""
    env = {"TF_CONFIG": tf_config(workers, slot.rank), "DEEPFLASH_MASTER": workers[0],
           "DEEPFLASH_RANK": str(slot.rank),
           "DEEPFLASH_SIZE": str(slot.size), "DEEPFLASH_LOCAL_RANK": str(slot.local_rank),
           "DEEPFLASH_LOCAL_SIZE": str(slot.local_size)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env[TASK_GPUS_ENV] = ",".join(gpus)  # what the rank reports of its task (rank_devices)
    return env


def run_in_process(fn: Callable[..., Any], args: tuple, env: dict[str, str], rank: int,
                   timeout: float = DEFAULT_TIMEOUT, watch: PeerWatch | None = None,
                   warm: bool = False) -> RankOutcome:
    """Runs ``fn(*args)`` in its own Python process with ``env`` added; returns its outcome.

    The function and its result travel as pickles in a private temporary directory; the process
    sees this one's ``sys.path``, so it imports deepflash and the user's code as this one does. It
    runs in its own process group, watches this process (it exits when this one is gone) and beats
    every second; it is killed, with its group, when it gives no sign of life for ``timeout``
    seconds, when ``watch`` says a peer failed, and whenever this function returns or raises.
    Every wait here is bounded.

    With ``warm``, the process is a warm spare of this host that matches its start (claimed, see
    :mod:`~deepflash.backends.rank_launch`) where there is one, and when its rank has succeeded, a
    new spare is started for the next rank.
    """
    start_env, run_env = split_env(env)
    rank_proc = forwarder = None
    ok = False
    try:
        rank_proc = RankProcess.claim(start_env) if warm else None
        if rank_proc is None:
            rank_proc = RankProcess.spawn(start_env)
        forwarder = StderrForwarder(rank_proc.path("stderr"), STDERR_TAIL)
        rank_proc.start(fn, args, run_env)
        last_check = time.time()
        while not rank_proc.done() and rank_proc.alive():
            time.sleep(0.02)
            if time.time() - last_check < BEAT_SECONDS:
                continue
            last_check = time.time()
            reason = watch.failed() if watch is not None else None
            if reason is not None:
                rank_proc.kill()
                return RankOutcome.failure(rank, f"RuntimeError: rank {rank} stopped because a peer failed: {reason}")
            silent = rank_proc.heartbeat.age(rank_proc.started)
            if silent > timeout:
                rank_proc.kill()
                return RankOutcome.failure(rank, f"TimeoutError: the training process of rank {rank} (pid "
                                                 f"{rank_proc.pid}) gave no sign of life for {silent:.0f}s, more "
                                                 f"than workerTimeout={timeout:g}s: it was killed (hung, or stopped)")
        if rank_proc.done():
            outcome = rank_proc.result()
            ok = outcome.error is None
            return outcome
        return RankOutcome.failure(rank, f"RuntimeError: the training process of rank {rank} ended without a "
                                         f"result (exit code {rank_proc.exit_code()}); its last stderr lines:\n"
                                         f"{forwarder.close()}")
    finally:
        if rank_proc is not None:
            rank_proc.kill()
            if forwarder is not None:
                forwarder.close()
            rank_proc.remove()
        if warm and ok:  # after a failure, no spare: the CPU goes to the failure's handling
            try:
                RankProcess.spawn(start_env, spare=True)
            except OSError as e:
                sys.stderr.write(f"deepflash: no warm spare for the next rank: {e}\n")


class _RankTask(RankTask):
    """The barrier task body: a port, TF_CONFIG, the peer watch, the rank's own process."""

    def __init__(self, fn: Callable[..., Any], args: tuple, env: dict[str, str], timeout: float):
        super().__init__(fn, args, env)
        self.timeout = timeout

    def run_rank(self, index: int, place: Placement) -> RankOutcome:
        import json

        from deepflash.worker.devices import task_gpu_addresses

        ctx, slots, slot = place.ctx, place.slots, place.slot
        server = PeerWatch.listen() if slot.rank == 0 else None
        try:
            address = f"{slot.host}:{free_port()}"
        except OSError as e:
            address = f"error: {e}"
        hub = f"{slot.host}:{server.getsockname()[1]}" if server is not None else ""
        shared = [json.loads(m) for m in ctx.allGather(json.dumps({"address": address, "hub": hub}))]
        # TF_CONFIG's worker list is in rank order, so that its task index is the rank.
        workers = [None] * len(slots)
        for i, s in enumerate(slots):
            workers[s.rank] = shared[i]["address"]
        hub = next(m["hub"] for m in shared if m["hub"])
        bad = [w for w in workers if w.startswith("error:")]
        if bad:
            if server is not None:
                server.close()
            return RankOutcome.failure(slot.rank, f"OSError: a rank found no free port: {bad[0]}")
        watch = PeerWatch(slot.rank, slot.size, self.timeout, server=server, hub=hub)
        try:
            try:
                env = {**self.env, **rank_env(workers, slot, task_gpu_addresses()),
                       "DEEPFLASH_WORKER_TIMEOUT": str(self.timeout)}
                outcome = run_in_process(self.fn, self.args, env, slot.rank, self.timeout, watch,
                                         warm=warm_enabled(self.env))
            except BaseException as e:  # noqa: BLE001  (reported to the driver)
                outcome = RankOutcome.failure(slot.rank, e)
            watch.report(outcome.error is None, "" if outcome.error is None else outcome.error.splitlines()[0])
            if outcome.error is None:
                # In place of a barrier: every rank's task waits for the others, bounded by their silence.
                reason = watch.finish()
                if reason is not None:
                    outcome = RankOutcome.failure(slot.rank, f"RuntimeError: rank {slot.rank} finished, but a peer "
                                                             f"failed: {reason}")
        finally:
            watch.close()
        return outcome


class MultiWorkerMirroredCommunicator(Communicator):
    """TensorFlow's ``MultiWorkerMirroredStrategy``: every process is one worker of ``TF_CONFIG``;
    gradients and metric states are all-reduced by the strategy.

    Must be created before TensorFlow runs its first op in the process (a fresh process per rank,
    see :func:`run_in_process`): it reads its rank from :func:`rank_env`'s variables, fixes the
    process's devices and then starts the strategy. Each process feeds its own shard: datasets go
    through ``distribute_datasets_from_function`` (no auto-sharding, no re-batching: ``batchSize``
    stays per process, as with Horovod), and Keras divides the loss by the global batch, so the
    summed gradients are the average over all processes' batches.
    """

    def __init__(self, threads: int = 0) -> None:
        import tensorflow as tf

        from deepflash.networks.keras_compat import distributed_metrics_are_global

        self.tf = tf
        self.global_evaluate = distributed_metrics_are_global()
        self.read_rank_env()
        # Devices (GPU pinning, CPU threads) are fixed before the strategy starts TensorFlow's runtime.
        super().__init__(threads)
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        resolver = self.strategy.cluster_resolver
        self.size = self.strategy.num_replicas_in_sync
        if resolver.task_id != self.rank:
            raise RuntimeError(f"TF_CONFIG names this process worker {resolver.task_id}, "
                               f"but DEEPFLASH_RANK is {self.rank}")

    def scope(self):
        from deepflash.networks.keras_compat import multi_worker_steps

        stack = contextlib.ExitStack()
        stack.enter_context(self.strategy.scope())
        stack.enter_context(multi_worker_steps())
        return stack

    def callbacks(self) -> list:
        if self.global_evaluate:
            return []
        from deepflash.worker.sync import AverageMetrics

        return [AverageMetrics(self.sum, self.size)]

    def dataset(self, build):
        # Called once in this process (one worker, one replica): the process's own batches.
        return self.strategy.distribute_datasets_from_function(lambda _context: build())

    def prepare_model(self, model) -> None:
        from deepflash.networks.keras_compat import prepare_distributed_fit

        prepare_distributed_fit(model)

    def validation_steps(self, rows: int, batch_size: int) -> int | None:
        # A distributed dataset needs its steps. Where the strategy combines the metrics, every
        # process takes the same number of steps: enough for the largest shard.
        if self.global_evaluate:
            own = np.zeros(self.size)
            own[self.rank] = rows
            rows = int(self.sum(own).max())
        return max(1, math.ceil(rows / batch_size))

    def sum(self, values):
        tf = self.tf
        x = tf.constant(np.asarray(values, np.float64))
        # This process's one replica holds x; the strategy's reduce sums it over every worker.
        per_replica = self.strategy.experimental_distribute_values_from_function(lambda _context: x)
        return np.asarray(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy(), np.float64)

    def barrier(self) -> None:
        self.sum(np.zeros(1))


@register("barrier")
class BarrierBackend(StageBackend):
    """``numProc`` processes as one Spark barrier stage, each a fresh Python on the ``kerasBackend``
    framework, data-parallel with that framework's own collectives: TensorFlow's
    ``MultiWorkerMirroredStrategy``, ``torch.distributed``
    (:class:`~deepflash.backends.torch_collectives.TorchCommunicator`) or ``jax.distributed``
    (:class:`~deepflash.backends.jax_collectives.JaxCommunicator`); no Horovod needed."""

    def communicator(self) -> type[Communicator]:
        if self.keras_backend == "torch":
            from deepflash.backends.torch_collectives import TorchCommunicator

            return TorchCommunicator
        if self.keras_backend == "jax":
            from deepflash.backends.jax_collectives import JaxCommunicator

            return JaxCommunicator
        return MultiWorkerMirroredCommunicator

    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        from deepflash.networks.keras_backends import child_env

        env = {**forwarded_env(("DEEPFLASH_",), RANK_ENV), **child_env(self.keras_backend)}
        task = _RankTask(fn, args, env, self.timeout)
        return run_stage(spark, task, self._num_proc, FOLLOW_ON, DIED, resources=self.training_resources(spark))
