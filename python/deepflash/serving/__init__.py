"""A fitted network's scores, in Spark and out of it.

Modules:
    scoring  batched calls on the network and its outputs as ``prediction`` (and class probabilities),
             shared by ``KerasModel.transform`` and the pyfunc model
    pyfunc   the network as an MLflow ``pyfunc`` model, served without Spark or a JVM
"""
from __future__ import annotations

from deepflash import lazy

# The pyfunc names import MLflow: only where they are used (KerasModel.transform needs only scoring).
__getattr__, __dir__ = lazy.exports(__name__, {name: "deepflash.serving.pyfunc" for name in (
    "DESCRIPTION", "NETWORK_ARTIFACT", "KerasNetworkModel", "log_pyfunc", "network_input_rows", "network_matrix",
    "network_requirements")})

__all__ = ["DESCRIPTION", "KerasNetworkModel", "NETWORK_ARTIFACT", "log_pyfunc", "network_input_rows", "network_matrix",
           "network_requirements"]
