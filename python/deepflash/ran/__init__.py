"""Platt's resource-allocating network (RAN): a growing RBF network for regression.

:mod:`deepflash.ran.core` is the learning rule in numpy; :mod:`deepflash.ran.stage` wraps it as
Spark ML stages.
"""
from __future__ import annotations

from deepflash.ran.core import RAN, RANSettings, RBFNetwork
from deepflash.ran.stage import RANEstimator, RANModel

__all__ = ["RAN", "RANEstimator", "RANModel", "RANSettings", "RBFNetwork"]
