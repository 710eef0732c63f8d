"""deepflash: Keras deep learning as native Spark ML stages.

Example:
    >>> from deepflash import KerasEstimator
    >>> model = KerasEstimator(layers="simple", epochs=5).fit(train_df)
"""
from __future__ import annotations

from deepflash import lazy, legacy_paths

legacy_paths.install()

# Imported on first use: a training or scoring process that imports deepflash.worker or
# deepflash.ml.model does not pay for the searches and MLflow.
__getattr__, __dir__ = lazy.exports(__name__, {
    "EvolutionarySearch": "deepflash.evolution", "EvolutionarySearchModel": "deepflash.evolution",
    "KerasEstimator": "deepflash.ml.estimator", "KerasModel": "deepflash.ml.model",
    "RANEstimator": "deepflash.ran", "RANModel": "deepflash.ran",
    "HyperoptSearch": "deepflash.tuning.hyperopt.search", "HyperoptSearchModel": "deepflash.tuning.hyperopt.search",
    "OptunaSearch": "deepflash.tuning.optuna.search", "OptunaSearchModel": "deepflash.tuning.optuna.search"})

__version__ = "0.1.0"
__all__ = ["EvolutionarySearch", "EvolutionarySearchModel", "HyperoptSearch", "HyperoptSearchModel", "KerasEstimator",
           "KerasModel", "OptunaSearch", "OptunaSearchModel",
           "RANEstimator", "RANModel", "__version__"]
