"""Checks the Parquet that materialization wrote against what validation saw, before it is committed.

:func:`deepflash.data.schema.summarize` validates one evaluation of the input and
:func:`deepflash.data.materialize.materialize` writes another. With a nondeterministic input (a UDF
that answers differently the second time, a source that changes between reads) the two can differ:
the written rows are what training reads, so they are checked too. :func:`verify_written` counts the
written rows of each split and the rows holding a null, NaN, inf or a value beyond float32 (and,
for classification, a label that is no class id below ``num_classes``), and raises
:class:`WrittenDataError` naming the column when anything differs from the summary.

Two scans of the same interface, ``scan(split_url, spark, num_classes) -> WrittenCounts``:

- :func:`scan_on_driver` reads the files with ``pyarrow`` on the driver, one row group at a time
  (Parquet's min/max statistics skip NaN, so the values themselves are read);
- :func:`scan_with_spark` runs one Spark job over them, for data larger than
  :data:`DRIVER_SCAN_BYTES`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pyspark.sql import functions as F

from deepflash.data.readers.pieces import list_pieces
from deepflash.data.schema import (
    FEATURES,
    FLOAT32_MAX,
    IS_VALIDATION,
    LABEL,
    WEIGHT,
    array_out_of_float32_range,
    in_float32_range,
    is_fractional,
)
from deepflash.io import fs

# Up to this many written bytes the driver reads the values back itself (faster than a Spark job
# on small data: see benchmarks/suite.py, "verify"); above it one Spark job does.
DRIVER_SCAN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SourceColumns:
    """The user's names of the columns behind the materialized ones, for the error messages."""

    features: str = FEATURES
    label: str = LABEL
    weight: str | None = None


@dataclass(frozen=True)
class WrittenCounts:
    """What a scan of the written data found.

    Attributes:
        train_rows, val_rows: rows written per split.
        bad_features, bad_labels, bad_weights: rows whose value (any element, for the features) is
            null, NaN, inf or beyond float32.
        bad_classes: classification rows whose finite label is not an integer in [0, num_classes).
    """

    train_rows: int
    val_rows: int
    bad_features: int
    bad_labels: int
    bad_weights: int = 0
    bad_classes: int = 0


class WrittenDataError(ValueError):
    """The materialized data differs from the data that was validated."""


_NONDETERMINISTIC = ("the input is not deterministic (a UDF, a random column or a source that changes "
                     "between reads): make it deterministic, or cache or checkpoint the DataFrame before fit")


def _split_dir(split_url: str, is_validation: bool) -> str:
    return fs.join(split_url, f"{IS_VALIDATION}={'true' if is_validation else 'false'}")


def _not_finite(values: np.ndarray) -> np.ndarray:
    # float32 cannot hold a finite value beyond its max: ~isfinite covers null (read as NaN), NaN, inf.
    return ~np.isfinite(values)


def _bad_feature_rows(chunk) -> int:
    """Rows of one Arrow list chunk that are null or hold a null or non-finite element."""
    import pyarrow.compute as pc

    values = chunk.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    bad = _not_finite(flat)
    if not bad.any():
        return chunk.null_count
    parents = pc.list_parent_indices(chunk).to_numpy()
    rows = set(np.unique(parents[bad]).tolist())
    if chunk.null_count:
        rows |= set(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False)).tolist())
    return len(rows)


def _bad_class_rows(labels: np.ndarray, num_classes: int) -> int:
    if not num_classes:
        return 0
    finite = labels[np.isfinite(labels)]
    return int(np.count_nonzero((finite < 0) | (finite >= num_classes) | (finite != np.floor(finite))))


def scan_on_driver(split_url: str, spark, num_classes: int) -> WrittenCounts:
    """Reads the written files back with ``pyarrow``, one row group at a time (``spark`` unused)."""
    import pyarrow.parquet as pq

    filesystem, _ = fs.resolve(split_url)
    rows = {False: 0, True: 0}
    bad = {FEATURES: 0, LABEL: 0, WEIGHT: 0, "classes": 0}
    for is_validation in (False, True):
        for piece in list_pieces(_split_dir(split_url, is_validation)):
            with filesystem.open_input_file(piece.path) as handle:
                parquet = pq.ParquetFile(handle)
                columns = [c for c in (FEATURES, LABEL, WEIGHT) if c in parquet.schema_arrow.names]
                table = parquet.read_row_group(piece.row_group, columns=columns)
            rows[is_validation] += piece.rows
            bad[FEATURES] += sum(_bad_feature_rows(chunk) for chunk in table.column(FEATURES).chunks)
            labels = table.column(LABEL).to_numpy().astype(np.float32, copy=False)
            bad[LABEL] += int(np.count_nonzero(_not_finite(labels)))
            bad["classes"] += _bad_class_rows(labels, num_classes)
            if WEIGHT in columns:
                weights = table.column(WEIGHT).to_numpy().astype(np.float32, copy=False)
                bad[WEIGHT] += int(np.count_nonzero(_not_finite(weights)))
    return WrittenCounts(train_rows=rows[False], val_rows=rows[True], bad_features=bad[FEATURES],
                         bad_labels=bad[LABEL], bad_weights=bad[WEIGHT], bad_classes=bad["classes"])


def scan_with_spark(split_url: str, spark, num_classes: int) -> WrittenCounts:
    """One Spark job over the written files computing the same counts as :func:`scan_on_driver`."""
    written = spark.read.parquet(split_url)
    feats, label = F.col(FEATURES), F.col(LABEL)

    def rows_where(condition):
        return F.sum(F.when(condition, 1).otherwise(0))

    # The partition value is inferred as boolean or string depending on the Spark version.
    is_val = F.col(IS_VALIDATION).cast("string") == F.lit("true")
    good_label = in_float32_range(label)
    aggregates = [
        rows_where(~is_val).alias("train_rows"),
        rows_where(is_val).alias("val_rows"),
        rows_where(array_out_of_float32_range(feats)).alias("bad_features"),
        rows_where(~good_label).alias("bad_labels"),
        rows_where(good_label & ((label < 0) | (label >= num_classes) | is_fractional(label))
                   if num_classes else F.lit(False)).alias("bad_classes"),
    ]
    if WEIGHT in written.columns:
        aggregates.append(rows_where(~in_float32_range(F.col(WEIGHT))).alias("bad_weights"))
    row = written.agg(*aggregates).collect()[0].asDict()
    return WrittenCounts(**{k: int(v or 0) for k, v in row.items()})


def choose_scan(written_bytes: int) -> Callable[[str, object, int], WrittenCounts]:
    """The driver scan up to :data:`DRIVER_SCAN_BYTES`, the Spark job above."""
    return scan_on_driver if written_bytes <= DRIVER_SCAN_BYTES else scan_with_spark


def verify_written(split_url: str, *, spark, train_rows: int, val_rows: int, num_classes: int,
                   columns: SourceColumns) -> WrittenCounts:
    """Scans the data materialization wrote under ``split_url`` (partitioned by ``is_validation``)
    and raises :class:`WrittenDataError` naming the column when its row counts differ from the
    validated ``train_rows`` / ``val_rows`` or a value is bad; returns the counts otherwise.

    Example:
        >>> verify_written(tmp_split, spark=spark, train_rows=900, val_rows=100, num_classes=10,
        ...                columns=SourceColumns("pixels", "digit"))
    """
    counts = choose_scan(fs.size(split_url))(split_url, spark, num_classes)
    written = counts.train_rows + counts.val_rows
    if (counts.train_rows, counts.val_rows) != (train_rows, val_rows):
        raise WrittenDataError(
            f"the materialized data holds {counts.train_rows} training and {counts.val_rows} validation rows, "
            f"but validation counted {train_rows} and {val_rows}; {_NONDETERMINISTIC}")
    values = f"null, NaN, inf or values beyond float32 (|x| > {FLOAT32_MAX:.4g})"
    faults = [("featuresCol", columns.features, counts.bad_features, values),
              ("labelCol", columns.label, counts.bad_labels, values),
              ("weightCol", columns.weight, counts.bad_weights, values),
              ("labelCol", columns.label, counts.bad_classes,
               f"labels that are no class id in [0, {num_classes})")]
    for param, name, bad, what in faults:
        if bad:
            raise WrittenDataError(
                f"`{param}` column {name!r} holds {what} in {bad} of the {written} rows written for training, "
                f"none when it was validated; {_NONDETERMINISTIC}")
    return counts
