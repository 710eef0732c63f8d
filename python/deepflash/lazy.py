"""Package attributes imported on first use (PEP 562), so that importing a package does not import
everything it offers.

A training process or a scoring worker imports ``deepflash.worker.loop`` or ``deepflash.ml.model``,
which import ``deepflash`` first: with its names lazy, that no longer pulls in MLflow, Hyperopt,
Optuna and the searches (about 1.7 s of a rank's start on this project's machine).

Example:
    __getattr__, __dir__ = lazy.exports(__name__, {"KerasEstimator": "deepflash.ml.estimator"})
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each of ``names`` (name -> the module
    that defines it) is imported from its module when first read, then kept on the package."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
