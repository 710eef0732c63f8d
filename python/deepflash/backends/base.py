"""The Backend interface."""
from __future__ import annotations

import abc
from typing import Any, Callable

BACKENDS: dict[str, type["Backend"]] = {}


def register(name: str):
    def wrap(cls):
        BACKENDS[name] = cls
        cls.name = name
        return cls

    return wrap


class WorkerError(RuntimeError):
    """A training process failed; the message carries its exception and last frames."""


class Backend(abc.ABC):
    """Runs a picklable function once per training process.

    Args:
        num_proc: number of processes.
    """

    name = "abstract"
    distributed = False
    # How the training processes share gradients and metrics: "none" (one process), "horovod", or
    # "tf" (tf.distribute.MultiWorkerMirroredStrategy); remote.train picks its communicator by it.
    collective = "none"

    def __init__(self, num_proc: int = 1):
        self._num_proc = num_proc

    def num_processes(self) -> int:
        return self._num_proc

    def check(self, spark) -> None:
        """Raises before anything runs if this backend cannot start here (e.g. too few slots)."""

    @abc.abstractmethod
    def run(self, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        """Calls ``fn(*args)`` in every process and returns the results ordered by rank.

        Raises:
            WorkerError: a process raised; the message carries its exception and last frames.
        """


def get_backend(name: str, num_proc: int) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"`backend` == {name!r}, must be one of: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](num_proc)
