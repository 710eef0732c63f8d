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

    def __init__(self, num_proc: int = 1):
        self._num_proc = num_proc

    def num_processes(self) -> int:
        return self._num_proc

    def check(self, spark) -> None:
        """Raises before anything runs if this backend cannot start here (e.g. too few slots)."""

    @abc.abstractmethod
    def run(self, fn: Callable[..., Any], args: tuple = (), errors_to: str | None = None) -> list[Any]:
        """Calls ``fn(*args)`` in every process and returns the results ordered by rank.

        Args:
            errors_to: a store directory where a failing process leaves its traceback, so that
                the :class:`WorkerError` raised on the driver says what went wrong.
        """


def get_backend(name: str, num_proc: int) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"`backend` == {name!r}, must be one of: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](num_proc)
