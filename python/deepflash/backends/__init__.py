"""Backends start the training processes: ``run(fn, args) -> one result per rank``.

``local`` runs the function in the driver process (tests, small data); ``horovod`` runs
``numProc`` Horovod processes as one Spark barrier stage (Gloo), inside Spark's Python workers;
``barrier`` runs them as a barrier stage too, each in a fresh process, data-parallel with
TensorFlow's ``MultiWorkerMirroredStrategy`` (no Horovod). A new backend is
a new module that subclasses ``Backend`` and registers itself in ``BACKENDS``.
"""
from __future__ import annotations

from deepflash.backends.base import BACKENDS, Backend, WorkerError, get_backend
from deepflash.backends import barrier as _barrier  # noqa: F401  (registers "barrier")
from deepflash.backends import horovod as _horovod  # noqa: F401  (registers "horovod")
from deepflash.backends import local as _local  # noqa: F401  (registers "local")

__all__ = ["Backend", "BACKENDS", "WorkerError", "get_backend"]
