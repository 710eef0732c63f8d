"""What a fit planned: :class:`FitPlan`, the typed object that crosses the driver/worker boundary.

Worker-safe: a plain frozen dataclass, no Spark, no TensorFlow.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The reader the estimator uses unless told otherwise (see the benchmark: Arrow reads digits
# shards 30x and Fashion-MNIST shards several times faster than Petastorm, with the same rows).
DEFAULT_READER = "arrow"


@dataclass(frozen=True)
class FitPlan:
    """The materialized data of one fit and what was learned validating it.

    Returned by :meth:`deepflash.KerasEstimator.plan`; every training process receives it.

    Args:
        train_url, val_url: Parquet directories in the store (qualified URIs).
        train_rows, val_rows: their row counts.
        output_kind: ``multiclass``, ``binary`` or ``regression``.
        num_classes: classes (0 for regression).
        input_dim: length of the feature vectors.
        data_fingerprint: identity of the data, columns and split.
        store_url: the store's root URI.
        reused: the data was already materialized by an earlier fit.
        write_seconds, bytes: cost and size of the materialization (0 when reused).
        reader: the registered reader that training processes use.
        threads: TensorFlow CPU threads per process (0: TensorFlow's default).
        weighted: the data has a ``weight`` column (the fit's ``weightCol``), multiplied into the loss.
        input_shape: what the network reshapes the feature vector to: the ``inputShape`` Param, or
            else the window shape in the features column's metadata; None keeps it flat.
    """

    train_url: str
    val_url: str
    train_rows: int
    val_rows: int
    output_kind: str
    num_classes: int
    input_dim: int
    data_fingerprint: str
    store_url: str
    reused: bool = False
    write_seconds: float = 0.0
    bytes: int = 0
    reader: str = DEFAULT_READER
    threads: int = 0
    weighted: bool = False
    input_shape: tuple[int, ...] | None = None

    def replace(self, **changes: Any) -> FitPlan:
        return dataclasses.replace(self, **changes)

