"""A fitted network's scores, in Spark and out of it.

Modules:
    scoring  batched calls on the network and its outputs as ``prediction`` (and class probabilities),
             shared by ``KerasModel.transform`` and the pyfunc model
    pyfunc   the network as an MLflow ``pyfunc`` model, served without Spark or a JVM
"""
from __future__ import annotations

from deepflash.serving.pyfunc import (
    DESCRIPTION,
    NETWORK_ARTIFACT,
    KerasNetworkModel,
    log_pyfunc,
    network_input_rows,
    network_matrix,
    network_requirements,
)

__all__ = ["DESCRIPTION", "KerasNetworkModel", "NETWORK_ARTIFACT", "log_pyfunc", "network_input_rows", "network_matrix",
           "network_requirements"]
