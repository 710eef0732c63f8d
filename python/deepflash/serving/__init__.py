"""Scoring a fitted network outside Spark ML: its outputs as predictions (``scoring``) and the MLflow
``pyfunc`` model that serves it without Spark (``pyfunc``)."""
from __future__ import annotations

from deepflash.serving.pyfunc import (DESCRIPTION, NETWORK_ARTIFACT, KerasNetworkModel, log_pyfunc, network_input_rows,
                                      network_matrix, network_requirements)

__all__ = ["DESCRIPTION", "KerasNetworkModel", "NETWORK_ARTIFACT", "log_pyfunc", "network_input_rows", "network_matrix",
           "network_requirements"]
