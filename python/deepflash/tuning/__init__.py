"""Hyperparameter search over KerasEstimator Params, as Spark ML Estimators.

- ``space``: the dict search space, its checks, a sample -> Param values, ``narrow`` for a refine stage;
- ``trial``: ``TrialStatus`` and ``TrialResult``, one trial's outcome, and the trials table;
- ``objective``: one trial's training and scoring (worker side);
- ``params``: the Params every engine shares; ``progress``: a line and an MLflow run per trial;
- ``base``: ``BaseSearch`` (the fit: plan, trials, refine, best trial, refit) and ``BaseSearchModel``;
  ``persistence``: saving and loading both;
- ``hyperopt``: ``HyperoptSearch`` (``search``), its space (``space``), result dicts (``trials``) and
  Spark trial dispatch (``dispatch``);
- ``optuna``: ``OptunaSearch`` (``search``), its space (``space``) and worker side (``engine``);
- ``optimizer_study``: the optimizer / learning-rate / loss / batch-size study.
"""
from __future__ import annotations

from deepflash.tuning.hyperopt.search import HyperoptSearch, HyperoptSearchModel
from deepflash.tuning.optuna.search import OptunaSearch, OptunaSearchModel

__all__ = ["HyperoptSearch", "HyperoptSearchModel", "OptunaSearch", "OptunaSearchModel"]
