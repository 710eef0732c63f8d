"""``kerasBackend="jax"`` on the ``barrier`` backend: one rank (see :func:`check_processes`)."""
from __future__ import annotations

from deepflash.backends.base import Communicator

# Why more than one JAX rank is refused (see check_processes).
MULTI_PROCESS_REASON = "multi-process JAX training is not supported yet"


def check_processes(num_proc: int) -> None:
    """Raises before any Spark job when ``numProc`` JAX ranks cannot train."""
    if num_proc > 1:
        raise ValueError(f"`numProc` == {num_proc} with kerasBackend='jax': {MULTI_PROCESS_REASON}; use numProc=1, "
                         "or kerasBackend='torch' or 'tensorflow' for data-parallel training")


class JaxCommunicator(Communicator):
    """The one JAX rank: nothing to share."""
