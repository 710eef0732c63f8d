"""Optimizer names -> Keras optimizers.

Under Keras 2 the legacy optimizer classes are used on purpose: Horovod 0.28's
``DistributedOptimizer`` wraps them, and their state can be saved and restored for resuming. Under
Keras 3 (the modern profile) the current classes are (see :mod:`deepflash.networks.keras_compat`).
"""
from __future__ import annotations

OPTIMIZERS = ("sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamax", "nadam")


def check_optimizer(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"`optimizer` == {name!r}, must be one of: {', '.join(OPTIMIZERS)}")
    return name.lower()


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0, nesterov: bool = False):
    """A fresh optimizer. ``momentum`` applies to sgd and rmsprop, ``nesterov`` to sgd."""
    from deepflash.networks.keras_compat import optimizer_module

    legacy = optimizer_module()
    name = check_optimizer(name)
    if learning_rate <= 0:
        raise ValueError(f"`learningRate` == {learning_rate!r}, must be > 0")
    if name == "sgd":
        return legacy.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)
    if name == "rmsprop":
        return legacy.RMSprop(learning_rate=learning_rate, momentum=momentum)
    cls = {"adagrad": legacy.Adagrad, "adadelta": legacy.Adadelta, "adam": legacy.Adam,
           "adamax": legacy.Adamax, "nadam": legacy.Nadam}[name]
    return cls(learning_rate=learning_rate)
