"""Readers turn a shard of materialized Parquet into numpy arrays on a worker.

Modules:
    base       the ``Reader`` interface, ``Shard`` (what a reader yields), the ``READERS`` registry
               and ``get_reader``; ``Reader.load`` checks the rows read against the metadata
    pieces     a dataset's row groups (``list_pieces``) and a shard's (``shard_pieces``)
    arrow      ``ArrowReader`` ("arrow", the default): ``pyarrow.parquet`` alone, so it runs on both
               profiles, the modern one (Keras 3, no Petastorm) included
    petastorm  ``PetastormReader`` ("petastorm"): Petastorm's batch reader, classic profile only

A new reader is a module here with a ``Reader`` subclass under ``@register(name)``, imported
below. The ``tf.data`` pipeline over a reader is :mod:`deepflash.data.pipeline`. Worker code
imports this package; it never imports Spark or the estimator.
"""
from __future__ import annotations

from deepflash.data.readers.arrow import ArrowReader
from deepflash.data.readers.base import READERS, WEIGHT, Reader, Shard, ShortReadError, get_reader
from deepflash.data.readers.petastorm import PetastormReader

__all__ = ["ArrowReader", "PetastormReader", "READERS", "Reader", "Shard", "ShortReadError", "WEIGHT", "get_reader"]
