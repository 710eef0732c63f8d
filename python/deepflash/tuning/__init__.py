"""Hyperparameter search: spaces (``space``), trials (``objective``) and HyperoptSearch (``search``)."""
from __future__ import annotations

from deepflash.tuning.search import HyperoptSearch, HyperoptSearchModel

__all__ = ["HyperoptSearch", "HyperoptSearchModel"]
