"""Hyperparameter search: spaces (``space``), trials (``objective``), the shared search (``base``),
and its engines: HyperoptSearch (``search``) and OptunaSearch (``optuna_search``)."""
from __future__ import annotations

from deepflash.tuning.optuna.search import OptunaSearch, OptunaSearchModel
from deepflash.tuning.hyperopt.search import HyperoptSearch, HyperoptSearchModel

__all__ = ["HyperoptSearch", "HyperoptSearchModel", "OptunaSearch", "OptunaSearchModel"]
