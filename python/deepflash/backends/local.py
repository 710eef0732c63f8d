"""``backend="local"``: training in the driver process, one process with the base
:class:`~deepflash.backends.base.Communicator` (nothing to share).

Keras fixes its framework once per process, so a fit whose ``kerasBackend`` is not the driver's
trains in one fresh child process started with that backend (the barrier backend's
:func:`~deepflash.backends.barrier.run_in_process`: bounded by ``workerTimeout``, killed with the
fit), rather than being refused: the data and the model reach it as files and bytes anyway, and
its weights come back as arrays that the driver's backend loads.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepflash.backends.base import Backend, WorkerError, register


@register("local")
class LocalBackend(Backend):
    distributed = False

    def check(self, spark) -> None:
        if self._num_proc != 1:
            raise ValueError(f"`numProc` == {self._num_proc}, must be 1 with backend='local'; "
                             "use backend='barrier' (or 'horovod') for more processes")

    def in_child(self) -> bool:
        """True when the fit trains in a child process (its kerasBackend is not the driver's)."""
        from deepflash.networks.keras_backends import foreign

        return foreign(self.keras_backend)

    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        if not self.in_child():
            return [fn(*args)]  # in this process: the exception itself reaches the caller
        from deepflash.backends.barrier import run_in_process
        from deepflash.networks.keras_backends import child_env

        outcome = run_in_process(fn, args, child_env(self.keras_backend), 0, self.timeout)
        if outcome.error is not None:
            raise WorkerError(f"the training process (kerasBackend={self.keras_backend!r}) failed: {outcome.error}")
        return [outcome.value]
