"""The Petastorm reader (classic profile only: the modern profile installs no Petastorm)."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import numpy as np

from deepflash.data.readers.base import WEIGHT, Reader, Shard, register


@register("petastorm")
class PetastormReader(Reader):
    """Petastorm's ``make_batch_reader``, sharded by row group, read once into memory.

    Reading array columns through Petastorm is slow compared with a training step, so each shard is
    read once and then served from memory by ``tf.data`` for every epoch. ``workers`` sets
    Petastorm's reader pool size.
    """

    def __init__(self, workers: int = 2):
        self.workers = workers

    def iter_batches(self, url: str, shard: int = 0, num_shards: int = 1,
                     seed: int | None = None) -> Iterator[Shard]:
        from petastorm import make_batch_reader

        # petastorm logs that our plain Parquet has no Unischema (expected) and prints on close.
        logging.getLogger("petastorm").setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # petastorm 0.13 uses pyarrow's legacy dataset API, which warns on every call.
            warnings.simplefilter("ignore", FutureWarning)
            with make_batch_reader(url, num_epochs=1, cur_shard=shard if num_shards > 1 else None,
                                   shard_count=num_shards if num_shards > 1 else None,
                                   workers_count=self.workers, shuffle_row_groups=seed is not None,
                                   seed=seed) as reader:
                for batch in reader:
                    if len(batch.label):
                        weights = getattr(batch, WEIGHT, None)
                        yield Shard(np.asarray(batch.features, dtype=np.float32),
                                    np.asarray(batch.label, dtype=np.float32),
                                    None if weights is None else np.asarray(weights, dtype=np.float32))
