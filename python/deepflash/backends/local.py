"""``backend="local"``: training in the driver process, one process with the base
:class:`~deepflash.backends.base.Communicator` (nothing to share)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepflash.backends.base import Backend, register


@register("local")
class LocalBackend(Backend):
    distributed = False

    def check(self, spark) -> None:
        if self._num_proc != 1:
            raise ValueError(f"`numProc` == {self._num_proc}, must be 1 with backend='local'; "
                             "use backend='horovod' for more processes")

    def run(self, spark, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        return [fn(*args)]  # in this process: the exception itself reaches the caller
