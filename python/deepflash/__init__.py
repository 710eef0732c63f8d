"""deepflash: Keras deep learning as native Spark ML stages.

Example:
    >>> from deepflash import KerasEstimator
    >>> model = KerasEstimator(layers="simple", epochs=5).fit(train_df)
"""
from __future__ import annotations

from deepflash.estimator import KerasEstimator
from deepflash.evolution import EvolutionarySearch, EvolutionarySearchModel
from deepflash.model import KerasModel
from deepflash.ran import RANEstimator, RANModel
from deepflash.tuning.optuna_search import OptunaSearch, OptunaSearchModel
from deepflash.tuning.search import HyperoptSearch, HyperoptSearchModel

__version__ = "0.1.0"
__all__ = ["EvolutionarySearch", "EvolutionarySearchModel", "HyperoptSearch", "HyperoptSearchModel", "KerasEstimator", "KerasModel", "OptunaSearch", "OptunaSearchModel",
           "RANEstimator", "RANModel", "__version__"]
