"""Backends start the training processes: ``run(fn, args) -> one result per rank``; each names the
communicator class that connects those processes (``Backend.communicator()``).

``local`` runs the function in the driver process (tests, small data) with the single-process
:class:`~deepflash.backends.base.Communicator`; ``horovod`` runs ``numProc`` Horovod processes as
one Spark barrier stage (Gloo), inside Spark's Python workers, connected by
:class:`~deepflash.backends.horovod.HorovodCommunicator`; ``barrier`` runs them as a barrier stage
too, each in a fresh process, data-parallel with TensorFlow's ``MultiWorkerMirroredStrategy`` (no
Horovod, :class:`~deepflash.backends.barrier.MultiWorkerMirroredCommunicator`). What the two
barrier-stage backends share is :mod:`deepflash.backends.stage`; :mod:`deepflash.backends.executor_env`
checks that the executors can run deepflash at all. A new backend is a new module that subclasses
``Backend`` (and ``Communicator`` where its processes share anything) and registers itself in
``BACKENDS``.
"""
from __future__ import annotations

from deepflash.backends import barrier as _barrier  # noqa: F401  (registers "barrier")
from deepflash.backends import horovod as _horovod  # noqa: F401  (registers "horovod")
from deepflash.backends import local as _local  # noqa: F401  (registers "local")
from deepflash.backends.base import BACKENDS, Backend, Communicator, WorkerError, get_backend

__all__ = ["Backend", "BACKENDS", "Communicator", "WorkerError", "get_backend"]
