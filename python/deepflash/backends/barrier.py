"""``backend="barrier"``: data-parallel training with TensorFlow's own collectives, no Horovod.

The ranks are one Spark barrier stage, as for ``horovod``. Each task learns its peers from
``BarrierTaskContext.getTaskInfos()``, picks a free port on its host and shares ``host:port`` with
``allGather``; from the list every task writes the ``TF_CONFIG`` of a
``tf.distribute.MultiWorkerMirroredStrategy`` worker (``{"cluster": {"worker": [...]}, "task":
{"type": "worker", "index": rank}}``) and starts its rank in a fresh Python process
(:mod:`deepflash.backends.rank_process`), like Spark's TorchDistributor: TensorFlow configures its
collectives only before its runtime starts, and a reused Spark Python worker has started it in an
earlier fit. The strategy then all-reduces gradients (ring all-reduce over gRPC) and the metrics.

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

import collections
import contextlib
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from deepflash.backends.base import DEFAULT_TIMEOUT, Backend, Communicator, register
from deepflash.backends.stage import Placement, RankOutcome, RankTask, check_slots, forwarded_env, run_stage
from deepflash.backends.watch import BEAT_SECONDS, Heartbeat, PeerWatch, payload_dir

# Errors a rank raises because another rank failed first; the driver reports the first cause.
FOLLOW_ON = ("UnavailableError", "CancelledError", "Collective ops is aborted", "Socket closed",
             "failed to connect", "peer")
# A rank process that ended without a result: the cause unless a rank raised an error of its own.
DIED = ("ended without a result",)
# Per-rank variables the child receives; the driver's DEEPFLASH_* ones are forwarded as they are.
RANK_ENV = ("TF_CONFIG", "DEEPFLASH_RANK", "DEEPFLASH_SIZE", "DEEPFLASH_LOCAL_RANK", "DEEPFLASH_LOCAL_SIZE",
            "DEEPFLASH_PARENT_PID", "DEEPFLASH_HEARTBEAT", "DEEPFLASH_MASTER", "DEEPFLASH_WORKER_TIMEOUT")
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
    return env


def run_in_process(fn: Callable[..., Any], args: tuple, env: dict[str, str], rank: int,
                   timeout: float = DEFAULT_TIMEOUT, watch: PeerWatch | None = None) -> RankOutcome:
    """Runs ``fn(*args)`` in a fresh Python process with ``env`` added; returns its outcome.

    The function and its result travel as pickles in a private temporary directory; the child
    sees this process's ``sys.path``, so it imports deepflash and the user's code as this one does.
    The child runs in its own process group, watches this process (it exits when this one is gone)
    and beats every second; it is killed, with its group, when it gives no sign of life for
    ``timeout`` seconds, when ``watch`` says a peer failed, and whenever this function returns or
    raises. Every wait here is bounded.
    """
    from pyspark import cloudpickle

    tmp = payload_dir()
    proc = None
    try:
        payload, result = os.path.join(tmp, "payload.pkl"), os.path.join(tmp, "result.pkl")
        heartbeat = Heartbeat(os.path.join(tmp, "alive"))
        with open(payload, "wb") as f:
            cloudpickle.dump((fn, args), f)
        child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
                     "DEEPFLASH_PARENT_PID": str(os.getpid()), "DEEPFLASH_HEARTBEAT": heartbeat.path}
        tail: collections.deque = collections.deque(maxlen=STDERR_TAIL)
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "deepflash.backends.rank_process", payload, result],
                                env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)

        def forward() -> None:
            for line in proc.stderr:
                tail.append(line)
                sys.stderr.write(line)
            sys.stderr.flush()

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        while True:
            try:
                code = proc.wait(timeout=BEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            reason = watch.failed() if watch is not None else None
            if reason is not None:
                kill_group(proc)
                return RankOutcome.failure(rank, f"RuntimeError: rank {rank} stopped because a peer failed: {reason}")
            silent = heartbeat.age(started)
            if silent > timeout:
                kill_group(proc)
                return RankOutcome.failure(rank, f"TimeoutError: the training process of rank {rank} (pid {proc.pid}) "
                                                 f"gave no sign of life for {silent:.0f}s, more than workerTimeout="
                                                 f"{timeout:g}s: it was killed (hung, or stopped)")
        reader.join(timeout=BEAT_SECONDS * 5)
        if os.path.exists(result):
            with open(result, "rb") as f:
                return pickle.load(f)
        return RankOutcome.failure(rank, f"RuntimeError: the training process of rank {rank} ended without a "
                                         f"result (exit code {code}); its last stderr lines:\n{''.join(tail)}")
    finally:
        if proc is not None:
            kill_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def kill_group(proc: subprocess.Popen) -> None:
    """Kills ``proc`` and every process of its group (what it started), and reaps it (bounded)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=BEAT_SECONDS * 10)
    except subprocess.TimeoutExpired:
        pass


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
                outcome = run_in_process(self.fn, self.args, env, slot.rank, self.timeout, watch)
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
class BarrierBackend(Backend):
    """``numProc`` processes as one Spark barrier stage, each a fresh Python on the ``kerasBackend``
    framework, data-parallel with that framework's own collectives: TensorFlow's
    ``MultiWorkerMirroredStrategy``, ``torch.distributed``
    (:class:`~deepflash.backends.torch_collectives.TorchCommunicator`) or ``jax.distributed``
    (:class:`~deepflash.backends.jax_collectives.JaxCommunicator`); no Horovod needed."""

    distributed = True

    def communicator(self) -> type[Communicator]:
        if self.keras_backend == "torch":
            from deepflash.backends.torch_collectives import TorchCommunicator

            return TorchCommunicator
        if self.keras_backend == "jax":
            from deepflash.backends.jax_collectives import JaxCommunicator

            return JaxCommunicator
        return MultiWorkerMirroredCommunicator

    def check(self, spark) -> None:
        check_slots(spark, self._num_proc, "barrier")

    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        from deepflash.networks.keras_backends import child_env

        env = {**forwarded_env(("DEEPFLASH_",), RANK_ENV), **child_env(self.keras_backend)}
        task = _RankTask(fn, args, env, self.timeout)
        return run_stage(spark, task, self._num_proc, FOLLOW_ON, DIED)
