"""The Backend interface and the single-process :class:`Communicator` every backend's communicator extends.

A backend starts the training processes on a session's cluster (:meth:`Backend.run`); its :meth:`Backend.communicator`
names the class that connects them inside each process (gradients, metrics, barriers). The class
travels to the processes inside :class:`~deepflash.worker.settings.TrainSettings`, pickled by
reference, and is created there by the training loop; it imports TensorFlow or Horovod only
when it is created, so importing it costs a worker nothing.
"""
from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable
from typing import Any

from deepflash.backends.collective_stats import AllReduceStats
from deepflash.registry import Registry

BACKENDS: Registry[Backend] = Registry("backend")
register = BACKENDS.register


# Seconds a training process may go without a sign of life (the workerTimeout Param's default).
DEFAULT_TIMEOUT = 120.0


class WorkerError(RuntimeError):
    """A training process failed; the message carries its exception and last frames."""


class Communicator:
    """How one training process shares gradients and metrics with the others; this base class is
    one process alone, with nothing to share (``backend="local"``, search trials, study runs).

    Created once per :func:`~deepflash.worker.loop.train` call, in the training process, before
    any model: it fixes the process's devices (GPU pinning, or ``threads`` CPU threads).

    Args:
        threads: > 0 caps TensorFlow's CPU threads (search trials that share an executor).
    """

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    # True when the compiled model's own evaluate() already combines every process's rows.
    global_evaluate = False

    def __init__(self, threads: int = 0) -> None:
        self.configure_devices(threads)

    def read_rank_env(self) -> None:
        """Takes this process's place among the ranks from the variables its barrier task set
        (:func:`~deepflash.backends.barrier.rank_env`); one process alone without them."""
        self.rank = int(os.environ.get("DEEPFLASH_RANK", "0"))
        self.size = int(os.environ.get("DEEPFLASH_SIZE", "1"))
        self.local_rank = int(os.environ.get("DEEPFLASH_LOCAL_RANK", "0"))
        self.local_size = int(os.environ.get("DEEPFLASH_LOCAL_SIZE", "1"))

    def rendezvous(self, framework: str) -> tuple[str, float]:
        """Where the ranks meet (rank 0's ``host:port``) and the seconds their collectives may wait
        (``workerTimeout``), from the barrier task's variables."""
        master = os.environ.get("DEEPFLASH_MASTER")
        if not master:
            raise RuntimeError(f"DEEPFLASH_MASTER is not set: a {framework} rank runs inside backend='barrier'")
        return master, float(os.environ.get("DEEPFLASH_WORKER_TIMEOUT", DEFAULT_TIMEOUT))

    def configure_devices(self, threads: int = 0) -> None:
        """Pins this process to the GPU(s) of its Spark task (or its local rank's) when there are
        GPUs, and splits CPU threads between the processes of a host otherwise."""
        from deepflash.worker.devices import configure_devices

        if threads <= 0 and self.local_size > 1:
            threads = max(1, (os.cpu_count() or 1) // self.local_size)
        configure_devices(local_rank=self.local_rank, threads=threads)

    def wrap_optimizer(self, optimizer):
        """The optimizer ``fit`` uses: ``optimizer``, or one that combines the processes' gradients."""
        return optimizer

    def allreduce_stats(self) -> AllReduceStats | None:
        """What this process's gradient all-reduces have cost so far, where the communicator runs
        them itself; None where there are none (one process) or the framework runs them inside its
        own step (TensorFlow's strategy, Horovod, JAX), out of reach of a timer."""
        return None

    def callbacks(self) -> list:
        """Keras callbacks that keep the processes in step; they run before every other callback."""
        return []

    def barrier(self) -> None:
        """Returns when every process got here (and rank 0 first)."""

    def sum(self, values):
        """The element-wise sum of ``values`` (a float64 array) over all processes."""
        return values

    def scope(self):
        """The context that models, optimizers and their variables are created and compiled in."""
        return contextlib.nullcontext()

    def dataset(self, build):
        """What ``model.fit``/``evaluate`` take: this process's batches, from ``build()`` (a
        ``tf.data.Dataset`` of per-process batches)."""
        return build()

    def prepare_model(self, model) -> None:
        """Readies a compiled model for ``fit`` under this communicator."""

    def evaluate(self, model, dataset, steps: int | None) -> dict:
        """``model.evaluate`` of this process's validation ``dataset`` (``steps`` steps, None: to
        its end): the metrics by name."""
        return model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)

    def validation_steps(self, rows: int, batch_size: int) -> int | None:
        """The steps of this process's validation (``rows`` rows in batches of ``batch_size``);
        None: to the end of its dataset."""
        return None


class Backend(abc.ABC):
    """Runs a picklable function once per training process.

    Args:
        num_proc: number of processes.
        timeout: seconds a process may go without a sign of life before the run fails with a
            :class:`WorkerError` naming its rank (the ``workerTimeout`` Param).
        keras_backend: tensorflow, torch or jax (the ``kerasBackend`` Param); None: the driver's.
    """

    name = "abstract"
    # True when the processes run on Spark executors (the data must be readable there).
    distributed = False

    def __init__(self, num_proc: int = 1, timeout: float = DEFAULT_TIMEOUT, keras_backend: str | None = None):
        from deepflash.networks.keras_backends import resolve

        self._num_proc = num_proc
        self.timeout = float(timeout)
        # The framework Keras trains on in the processes (the kerasBackend Param; the driver's by default).
        self.keras_backend = resolve(keras_backend)

    def num_processes(self) -> int:
        return self._num_proc

    def communicator(self) -> type[Communicator]:
        """The class whose instance connects this backend's training processes (created in each)."""
        return Communicator

    def check(self, spark) -> None:
        """Raises before anything runs if this backend cannot start here (e.g. too few slots)."""
        return None

    @abc.abstractmethod
    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        """Calls ``fn(*args)`` in every process and returns the results ordered by rank.

        Args:
            spark: the session whose cluster runs the processes (the training DataFrame's,
                classic or Connect); unused by a backend that runs in the driver.
            fn, args: what every process runs.

        Raises:
            WorkerError: a process raised; the message carries its exception and last frames.
        """


def get_backend(name: str, num_proc: int, timeout: float = DEFAULT_TIMEOUT,
                keras_backend: str | None = None) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"`backend` == {name!r}, must be one of: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](num_proc, timeout, keras_backend)
