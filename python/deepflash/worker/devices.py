"""Which GPU a process uses, from Spark's task resources; TensorFlow thread caps. Worker-safe.

Spark assigns GPUs to tasks when the cluster declares them (``spark.executor.resource.gpu.amount``,
``spark.task.resource.gpu.amount`` and a discovery script); a task then finds its addresses in
``TaskContext.get().resources()["gpu"].addresses``. Those addresses are the GPU ordinals that
CUDA sees on the executor's host, so a process takes exactly the GPUs Spark gave its task and
two tasks on one host never share one. Without task resources (local mode, a cluster that does
not schedule GPUs) a process falls back to ``local_rank % visible GPUs``.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

log = logging.getLogger("deepflash")

# The GPU addresses of a rank's task, for a rank that runs in its own process (no TaskContext there).
TASK_GPUS_ENV = "DEEPFLASH_TASK_GPUS"


def task_gpu_addresses() -> list[str]:
    """The GPU addresses Spark gave the running task; empty outside a task or without GPUs."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return []
    ctx = TaskContext.get()
    if ctx is None:
        return []
    info = ctx.resources().get("gpu")
    return list(info.addresses) if info is not None else []


@dataclass(frozen=True)
class RankDevices:
    """Where one training process ran: its host, the GPU addresses Spark gave its task, and the
    ``CUDA_VISIBLE_DEVICES`` its process saw (None: unset)."""

    host: str
    task_gpus: tuple[str, ...]
    cuda_visible_devices: str | None


def rank_devices() -> RankDevices:
    """This training process's :class:`RankDevices`."""
    own = os.environ.get(TASK_GPUS_ENV)
    gpus = tuple(a for a in own.split(",") if a) if own is not None else tuple(task_gpu_addresses())
    return RankDevices(host=socket.gethostname(), task_gpus=gpus,
                       cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))


def choose_gpus(num_visible: int, task_addresses: list[str], local_rank: int) -> list[int]:
    """Indices (into TensorFlow's physical GPU list) this process should use.

    Args:
        num_visible: GPUs TensorFlow lists in this process.
        task_addresses: ``task_gpu_addresses()``; integer ordinals as strings.
        local_rank: the process's rank on its host, for the fallback.
    """
    if num_visible == 0:
        return []
    if task_addresses:
        chosen = []
        for address in task_addresses:
            if not address.strip().isdigit() or int(address) >= num_visible:
                raise ValueError(f"Spark gave this task GPU address {address!r}, but this process sees "
                                 f"{num_visible} GPU(s) (ordinals 0..{num_visible - 1}); check the executor's GPU "
                                 "discovery script and CUDA_VISIBLE_DEVICES")
            chosen.append(int(address))
        return chosen
    return [local_rank % num_visible]


def configure_tensorflow(local_rank: int = 0, threads: int = 0) -> list[int]:
    """Pins this process's GPUs (memory growth on) or, without GPUs, caps CPU threads.

    TensorFlow accepts these settings only before its runtime starts. In a reused Python worker
    that already ran TensorFlow, the earlier settings stay (logged, not raised): the same task
    slot got the same resources then.

    Args:
        local_rank: the process's rank on its host (fallback GPU choice).
        threads: > 0 caps TensorFlow's intra-op threads (e.g. search trials sharing an executor).

    Returns:
        The GPU indices in use, empty on CPU.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    chosen = choose_gpus(len(gpus), task_gpu_addresses(), local_rank)
    if chosen:
        try:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            tf.config.set_visible_devices([gpus[i] for i in chosen], "GPU")
        except RuntimeError as e:  # the runtime already started in this process
            log.debug("GPU settings unchanged: %s", e)
        return chosen
    if threads > 0 and tf.config.threading.get_intra_op_parallelism_threads() != threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError as e:
            log.debug("TensorFlow threads unchanged (%s)", e)
    return []


def configure_devices(local_rank: int = 0, threads: int = 0) -> list[int]:
    """Pins this process's GPUs and caps its CPU threads for the framework Keras runs on here.

    On TensorFlow, :func:`configure_tensorflow`. On PyTorch or JAX, TensorFlow (which still reads the
    data through ``tf.data``) is kept off the GPUs, and the framework takes the GPU of its task (the
    barrier backend has already narrowed ``CUDA_VISIBLE_DEVICES`` to it) or of its local rank.
    """
    from deepflash.networks.keras_backends import running_backend

    backend = running_backend()
    if backend == "tensorflow":
        return configure_tensorflow(local_rank=local_rank, threads=threads)
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as e:  # TensorFlow's runtime already started in this process
        log.debug("TensorFlow's GPUs unchanged: %s", e)
    if backend == "torch":
        import torch

        chosen = choose_gpus(torch.cuda.device_count(), task_gpu_addresses(), local_rank)
        if chosen:
            torch.cuda.set_device(chosen[0])
        elif threads > 0:
            torch.set_num_threads(threads)
        return chosen
    import jax

    return [d.id for d in jax.local_devices() if d.platform == "gpu"]
