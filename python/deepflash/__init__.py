"""deepflash: Keras deep learning as native Spark ML stages.

Example:
    >>> from deepflash import KerasEstimator
    >>> model = KerasEstimator(layers="simple", epochs=5).fit(train_df)
"""
from __future__ import annotations

from deepflash import legacy_paths

legacy_paths.install()

from deepflash.evolution import EvolutionarySearch, EvolutionarySearchModel  # noqa: E402
from deepflash.ml.estimator import KerasEstimator  # noqa: E402
from deepflash.ml.model import KerasModel  # noqa: E402
from deepflash.ran import RANEstimator, RANModel  # noqa: E402
from deepflash.tuning.hyperopt.search import HyperoptSearch, HyperoptSearchModel  # noqa: E402
from deepflash.tuning.optuna.search import OptunaSearch, OptunaSearchModel  # noqa: E402

__version__ = "0.1.0"
__all__ = ["EvolutionarySearch", "EvolutionarySearchModel", "HyperoptSearch", "HyperoptSearchModel", "KerasEstimator",
           "KerasModel", "OptunaSearch", "OptunaSearchModel",
           "RANEstimator", "RANModel", "__version__"]
