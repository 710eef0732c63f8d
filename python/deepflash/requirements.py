"""Optional packages: what each feature needs, and one clear error when it is missing.

The wheel's core requirements leave out everything a platform brings in its own build (the training
framework) and everything only one feature uses (Horovod, Petastorm, PyTorch for the GP sampler);
they are extras (``deepflash[tensorflow]``, ``[horovod]``, ``[petastorm]``, ``[gp]``, ``[torch]``,
``[jax]``). Each feature
checks its package before any Spark job and raises :class:`MissingDependencyError` naming the
command that installs it, instead of a ``ModuleNotFoundError`` on an executor: the estimator calls
:func:`require` for TensorFlow and Petastorm; the Horovod backend and Optuna's GP sampler, whose
messages say more (which profile builds Horovod, a CPU build of PyTorch), raise it themselves.

Example:
    >>> from deepflash.requirements import TENSORFLOW, require
    >>> require(TENSORFLOW)
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass


class MissingDependencyError(ImportError):
    """A feature needs a package that this Python does not have."""


@dataclass(frozen=True)
class Requirement:
    """An optional package: its import name, its distribution, the extra that installs it, and
    what needs it (for the message)."""

    module: str
    package: str
    extra: str
    purpose: str

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a parent package that fails to import, or a stub in sys.modules
            return False

    def message(self) -> str:
        return (f"{self.purpose} needs {self.package}, which is not installed for {sys.executable} "
                f"(Python {sys.version.split()[0]}): install it with `pip install 'deepflash[{self.extra}]'` "
                f"(in a notebook: `%pip install 'deepflash[{self.extra}]'`), or install {self.package} "
                "the way your platform provides it")


TENSORFLOW = Requirement("tensorflow", "tensorflow", "tensorflow",
                         "training and scoring Keras models (the TensorFlow backend of Keras)")
HOROVOD = Requirement("horovod", "horovod", "horovod", "backend='horovod'")
PETASTORM = Requirement("petastorm", "petastorm", "petastorm", "reader='petastorm'")
TORCH = Requirement("torch", "torch", "gp", "OptunaSearch(sampler='gp') (Optuna's GPSampler)")
# Keras 3 on PyTorch or JAX (the kerasBackend Param).
TORCH_BACKEND = Requirement("torch", "torch", "torch", "kerasBackend='torch'")
JAX_BACKEND = Requirement("jax", "jax", "jax", "kerasBackend='jax'")


def require(requirement: Requirement) -> None:
    """Raises :class:`MissingDependencyError` naming the package and the install command when
    ``requirement`` is not installed; finds the module without importing it."""
    if not requirement.installed():
        raise MissingDependencyError(requirement.message())
