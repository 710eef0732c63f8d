"""The dict space as Optuna takes it: a sample drawn through a trial's ``suggest_*`` calls
(:func:`suggest`) and the GridSampler's grid (:func:`optuna_grid`)."""
from __future__ import annotations

import math
from typing import Any

from deepflash.tuning.space import ARCHITECTURE_KEYS, check_dict_form


def _primitive(values: list) -> bool:
    """Optuna stores categorical choices as they are only when they are None, bools, numbers or strings."""
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in values)


def check_optuna_space(space: dict) -> dict:
    """Checks a space for Optuna: the dict form only (a raw hyperopt expression cannot be translated)."""
    return check_dict_form(space, "the Optuna engine")


def suggest(trial: Any, space: dict) -> dict:
    """One sample of a dict space drawn through an Optuna trial's ``suggest_*`` calls.

    The sample has the shape hyperopt gives, so that :func:`deepflash.tuning.space.to_params` turns
    either into Param values.
    Choices that are not plain values (layer lists, augmentation steps) are drawn by their index.

    Example:
        >>> study.optimize(lambda trial: score(to_params(suggest(trial, space), base_layers)))
    """
    sample: dict[str, Any] = {}
    for name, dim in space.items():
        (kind, args), = dim.items()
        if kind == "uniform":
            sample[name] = trial.suggest_float(name, args[0], args[1])
        elif kind == "loguniform":
            sample[name] = trial.suggest_float(name, args[0], args[1], log=True)
        elif kind == "quniform":
            lo, hi, q = args
            sample[name] = round(trial.suggest_float(name, lo, lo + math.floor((hi - lo) / q) * q, step=q) / q) * q
        elif kind == "qloguniform":
            # Optuna has no step on a log scale: draw on the log scale, then round as hyperopt does.
            lo, hi, q = args
            sample[name] = max(q, round(trial.suggest_float(name, lo, hi, log=True) / q) * q)
        elif kind == "randint":
            sample[name] = trial.suggest_int(name, args[0], args[1] - 1)  # hyperopt's high is exclusive
        elif kind == "choice":
            sample[name] = _suggest_choice(trial, name, args)
        else:
            sample[name] = _suggest_architecture(trial, name, args)
    return sample


def _suggest_choice(trial: Any, name: str, options: list) -> Any:
    if _primitive(options):
        return trial.suggest_categorical(name, options)
    return options[trial.suggest_categorical(name, list(range(len(options))))]


def _suggest_architecture(trial: Any, name: str, args: dict) -> dict:
    """The depth first, then each layer's units, activation, dropout and batchnorm (conditional on it)."""
    a = {**ARCHITECTURE_KEYS, **args}
    lo, hi = a["depth"]
    depth = trial.suggest_int(f"{name}.depth", lo, hi)
    layers = []
    for i in range(depth):
        prefix = f"{name}.l{i}"
        low, high = a["dropout"]
        layers.append({"units": _suggest_choice(trial, f"{prefix}.units", a["units"]),
                       "activation": _suggest_choice(trial, f"{prefix}.activation", a["activation"]),
                       "dropout": trial.suggest_float(f"{prefix}.dropout", low, high) if high > low else low,
                       "batchnorm": _suggest_choice(trial, f"{prefix}.batchnorm", a["batchnorm"])})
    return {"architecture": layers}


def optuna_grid(space: dict) -> dict[str, list]:
    """The GridSampler's search space: each ``choice`` dimension's values, or their indices where
    they are not plain values (as :func:`suggest` draws them).

    Raises:
        ValueError: when a dimension is not a ``choice``.
    """
    grid = {}
    for name, dim in check_optuna_space(space).items():
        kind = next(iter(dim))
        if kind != "choice":
            raise ValueError(f"sampler='grid' needs `choice` dimensions only; `space`[{name!r}] is {kind!r}")
        options = dim["choice"]
        grid[name] = list(options) if _primitive(options) else list(range(len(options)))
    return grid
