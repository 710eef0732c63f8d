"""Validation of the training DataFrame on the driver.

Schema checks need no Spark job. Value checks (nulls, NaN, array lengths, labels, weights,
emptiness) are done in a single aggregation that also yields the row counts and a fingerprint of the
data, so validation and cache keying cost one pass over the data and nothing is written
before the data has been found valid.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BooleanType, NumericType

from deepflash.data.content import SummaryMemo

log = logging.getLogger("deepflash")

FEATURES = "features"
LABEL = "label"
WEIGHT = "weight"
IS_VALIDATION = "is_validation"
# The largest |x| of a row's features before the float32 cast (which turns 1e39 into inf), so that
# an error can say what was found; only evaluated for the rows that are out of range.
FEATURES_MAX_ABS = "features_max_abs"
# 20 digits hold any 64-bit hash; 38 hold the sum of 2**63 of them without overflow.
_HASH_SUM = "decimal(38,0)"
_SECOND_HASH_SALT = "deepflash-fingerprint-2"
# Features, labels and weights are materialized as float32: a larger value would become infinite.
FLOAT32_MAX = 3.4028234663852886e38
# Column metadata: {"deepflash": {"window_shape": [lookBack, k]}} on a LookBackWindow's output.
METADATA_KEY = "deepflash"
WINDOW_SHAPE_KEY = "window_shape"
# What earlier validation passes found about data that cannot have changed since.
_SUMMARIES = SummaryMemo()


@dataclass(frozen=True)
class DataSummary:
    """What one validation pass learned about the data."""

    rows: int
    val_rows: int
    input_dim: int
    output_kind: str          # multiclass | binary | regression
    num_classes: int          # 0 for regression
    fingerprint: str          # of the data, the columns and the split
    weighted: bool = False    # a weight column was given: the data has WEIGHT

    def to_json(self) -> dict:
        return asdict(self)


def _columns_message(df: DataFrame) -> str:
    return ", ".join(f"{f.name} ({f.dataType.simpleString()})" for f in df.schema.fields)


def check_column(df: DataFrame, param: str, name: str) -> None:
    if name not in df.columns:
        raise ValueError(
            f"`{param}` == {name!r}: no such column; the DataFrame has: {_columns_message(df)}")


def features_as_array(df: DataFrame, param: str, name: str, dtype: str = "float32") -> Column:
    """The feature column as ``array<float>`` (or ``array<double>`` with ``dtype="float64"``);
    raises if it is neither a Vector nor a numeric array."""
    check_column(df, param, name)
    column_type = df.schema[name].dataType
    if isinstance(column_type, VectorUDT):
        return vector_to_array(F.col(name), dtype)
    if isinstance(column_type, ArrayType) and isinstance(column_type.elementType, NumericType):
        return F.col(name).cast("array<float>" if dtype == "float32" else "array<double>")
    raise TypeError(
        f"`{param}` column {name!r} must be a Vector or an array of numbers, found {column_type.simpleString()}; "
        "assemble numeric columns with pyspark.ml.feature.VectorAssembler first")


def window_shape_metadata(shape: list[int]) -> dict:
    """The column metadata that records the shape a flat feature vector comes from."""
    return {METADATA_KEY: {WINDOW_SHAPE_KEY: [int(d) for d in shape]}}


def window_shape(df: DataFrame, name: str) -> list[int] | None:
    """The shape recorded in column ``name``'s metadata (see :func:`window_shape_metadata`), or
    None. Reads the schema only: no Spark job."""
    if name not in df.columns:
        return None
    shape = df.schema[name].metadata.get(METADATA_KEY, {}).get(WINDOW_SHAPE_KEY)
    if isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 1 for d in shape):
        return shape
    return None


def check_label(df: DataFrame, param: str, name: str) -> None:
    check_column(df, param, name)
    dtype = df.schema[name].dataType
    if not isinstance(dtype, NumericType):
        raise TypeError(f"`{param}` column {name!r} must be numeric, found {dtype.simpleString()}; "
                        "index string labels with pyspark.ml.feature.StringIndexer first")


def check_validation_col(df: DataFrame, name: str) -> None:
    check_column(df, "validationCol", name)
    dtype = df.schema[name].dataType
    if not isinstance(dtype, BooleanType):
        raise TypeError(f"`validationCol` column {name!r} must be boolean, found {dtype.simpleString()}")


def check_weight_col(df: DataFrame, name: str) -> None:
    check_column(df, "weightCol", name)
    dtype = df.schema[name].dataType
    if not isinstance(dtype, NumericType):
        raise TypeError(f"`weightCol` column {name!r} must be numeric, found {dtype.simpleString()}; "
                        "weights are numbers >= 0")


def prepare(df: DataFrame, features_col: str, label_col: str, validation_col: str | None,
            validation_split: float, seed: int, weight_col: str | None = None) -> DataFrame:
    """Projects to (features array<float>, label double, [weight double,] is_validation boolean,
    features_max_abs double).

    ``features_max_abs`` is the largest |x| of the features before their float32 cast; only
    :func:`summarize` reads it, for its error message, and materialization leaves it out.

    The split is a hash of the row and the seed, so it is the same on every run over the same
    data whatever its partitioning. The weight does not enter the split: the same rows validate
    with and without weights.
    """
    features = features_as_array(df, "featuresCol", features_col)
    check_label(df, "labelCol", label_col)
    if weight_col:
        check_weight_col(df, weight_col)
    if validation_col:
        check_validation_col(df, validation_col)
        is_val = F.coalesce(F.col(validation_col), F.lit(False))
    elif validation_split > 0:
        bucket = F.pmod(F.xxhash64(features, F.col(label_col), F.lit(seed)), F.lit(1_000_000))
        is_val = bucket < F.lit(int(round(validation_split * 1_000_000)))
    else:
        is_val = F.lit(False)
    weight = [F.col(weight_col).cast("double").alias(WEIGHT)] if weight_col else []
    max_abs = F.array_max(F.transform(features_as_array(df, "featuresCol", features_col, "float64"), F.abs))
    return df.select(features.alias(FEATURES), F.col(label_col).cast("double").alias(LABEL), *weight,
                     is_val.alias(IS_VALIDATION), max_abs.alias(FEATURES_MAX_ABS))


def _weight_aggregates(weight: Column) -> list[Column]:
    """The weight checks' part of the validation pass."""
    bad = weight.isNull() | F.isnan(weight)
    good = ~bad
    return [
        F.sum(F.when(bad, 1).otherwise(0)).alias("bad_weights"),
        F.sum(F.when(good & (weight < 0), 1).otherwise(0)).alias("negative_weights"),
        F.min(F.when(good, weight)).alias("min_weight"),
        F.sum(F.when(good & (F.abs(weight) > FLOAT32_MAX), 1).otherwise(0)).alias("infinite_weights"),
        F.max(F.when(good & (F.abs(weight) > FLOAT32_MAX), F.abs(weight))).alias("max_abs_weight"),
        F.sum(F.when(good & (weight > 0) & ~F.col(IS_VALIDATION), 1).otherwise(0)).alias("positive_train_weights"),
    ]


def _check_weights(row, weight_col: str) -> None:
    if row["bad_weights"]:
        raise ValueError(f"`weightCol` column {weight_col!r} has null or NaN values in {row['bad_weights']} of "
                         f"{row['rows']} rows; expected a weight >= 0 in every row")
    if row["negative_weights"]:
        raise ValueError(f"`weightCol` column {weight_col!r} has {row['negative_weights']} negative value(s) "
                         f"(min {row['min_weight']}); weights must be >= 0")
    if row["infinite_weights"]:
        raise ValueError(f"`weightCol` column {weight_col!r} has {row['infinite_weights']} infinite value(s) "
                         f"or value(s) beyond float32 (> {FLOAT32_MAX:.4g}; largest |x| {row['max_abs_weight']:g}); "
                         "weights must be finite")
    if not row["positive_train_weights"]:
        train_rows = row["rows"] - row["val_rows"]
        raise ValueError(f"`weightCol` column {weight_col!r} is 0 in all {train_rows} training rows: expected at "
                         "least one weight > 0, found none, so there is nothing to learn from")


def _check_classes(row, label_col: str, max_class_id: int | None) -> int:
    """The number of classes (the largest class id + 1) of a valid classification label column."""
    if row["fractional_labels"] or row["negative_labels"]:
        raise ValueError(
            f"`labelCol` column {label_col!r} must hold class ids 0, 1, 2, ... for task 'classification', "
            f"found {row['fractional_labels']} non-integer and {row['negative_labels']} negative labels; "
            "index labels with StringIndexer, or use task='regression'")
    largest = int(row["max_label"])
    if max_class_id is not None and largest > max_class_id:
        raise ValueError(f"`labelCol` column {label_col!r} holds class id {largest}, above `maxClassId` == "
                         f"{max_class_id} (the network would get {largest + 1} outputs); index labels with "
                         "StringIndexer, or raise `maxClassId` if that many classes are meant")
    if int(row["min_label"]) == largest:
        raise ValueError(f"`labelCol` column {label_col!r} has a single class ({largest}) for task "
                         "'classification': expected at least two classes")
    return largest + 1


def in_float32_range(x: Column) -> Column:
    """|x| <= float32 max: false for null, NaN (Spark orders NaN above every number) and +-inf."""
    return F.coalesce(F.abs(x) <= F.lit(FLOAT32_MAX), F.lit(False))


def is_fractional(x: Column) -> Column:
    """True for a number with a fractional part; false for null, NaN, +-inf and every |x| >= 2**53
    (all integers), for which ``floor`` is never evaluated: under ANSI mode it overflows a long."""
    return F.coalesce(F.when(F.abs(x) < F.lit(2.0 ** 53), x != F.floor(x)), F.lit(False))


def array_out_of_float32_range(values: Column, may_hold_null: bool = True) -> Column:
    """True for a null array or one holding a null, NaN, +-inf or |x| beyond float32. Built from
    codegen-able array functions (no lambda): ``array_max`` ranks NaN above every number and
    skips nulls, which ``array_compact`` counts. ``may_hold_null=False`` (an array type that
    cannot hold nulls, such as ``vector_to_array``'s) skips that count, which copies every array
    and was the pass's most expensive part."""
    largest, smallest = F.array_max(values), F.array_min(values)
    out = (largest > F.lit(FLOAT32_MAX)) | (smallest < F.lit(-FLOAT32_MAX))
    if may_hold_null:
        out = out | (F.size(F.array_compact(values)) != F.size(values))
    return values.isNull() | F.coalesce(out, F.size(values) > 0)


def _out_of_range_message(param: str, name: str, rows: int, largest: float) -> str:
    return (f"`{param}` column {name!r} holds {rows} rows with inf/-inf or values beyond float32 "
            f"(largest |x| {largest:g}); training on them ends in a NaN loss: drop, clip or rescale them first")


def summarize(prepared: DataFrame, *, task: str, features_col: str, label_col: str,
              key_extra: dict, weight_col: str | None = None, max_class_id: int | None = None,
              source: DataFrame | None = None) -> DataSummary:
    """Runs the single validation pass; raises ValueError naming the column on bad data.

    ``source``: the DataFrame ``prepared`` was made from, by :func:`prepare` with the split and seed
    that ``key_extra`` names. Where its rows cannot have changed since an earlier pass with the same
    arguments (:mod:`deepflash.data.content`: in-memory data under a deterministic plan), that
    pass's summary is returned without a job: it checked these very rows.

    Refused: nulls and NaN; inf, -inf and values beyond float32 in the features, the labels and
    the weights (they are materialized as float32); for classification, fractional or negative
    labels, a single class, and class ids above ``max_class_id`` (the ``maxClassId`` Param; None:
    no bound). With ``weight_col`` the prepared data has a WEIGHT column (:func:`prepare`): the
    same pass checks it and the fingerprint covers it.
    """
    memo_key = json.dumps({"task": task, "features": features_col, "label": label_col, "weight": weight_col,
                           "max_class_id": max_class_id, **key_extra}, sort_keys=True, default=str)
    if source is not None:
        found = _SUMMARIES.get(source, memo_key)
        if found is not None:
            log.info("validation pass skipped: the rows are the in-memory data an earlier fit validated "
                     "(fingerprint %s)", found.fingerprint)
            return found
    summary = _validation_pass(prepared, task=task, features_col=features_col, label_col=label_col,
                               key_extra=key_extra, weight_col=weight_col, max_class_id=max_class_id)
    if source is not None:  # its identity is taken again: the pass loads a cache that was not loaded before
        _SUMMARIES.put(source, memo_key, summary)
    return summary


def _validation_pass(prepared: DataFrame, *, task: str, features_col: str, label_col: str,
                     key_extra: dict, weight_col: str | None, max_class_id: int | None) -> DataSummary:
    feats, label = F.col(FEATURES), F.col(LABEL)
    # No lambda over the elements of every row; the rows flagged (rare) are then told apart.
    feature_type = prepared.schema[FEATURES].dataType
    any_bad_feature = array_out_of_float32_range(feats, may_hold_null=getattr(feature_type, "containsNull", True))
    nan_feature = any_bad_feature & (feats.isNull() | F.exists(feats, lambda x: x.isNull() | F.isnan(x)))
    huge_feature = any_bad_feature & ~nan_feature
    max_abs = (F.col(FEATURES_MAX_ABS) if FEATURES_MAX_ABS in prepared.columns
               else F.array_max(F.transform(feats, F.abs)))
    bad_label = label.isNull() | F.isnan(label)
    good_label = ~bad_label
    huge_label = good_label & ~in_float32_range(label)
    # Without weights the row hash is what it always was.
    hashed = [feats, label, F.col(IS_VALIDATION)] + ([F.col(WEIGHT)] if weight_col else [])
    row_hash = F.xxhash64(*hashed)
    row = prepared.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(nan_feature, 1).otherwise(0)).alias("bad_features"),
        F.sum(F.when(huge_feature, 1).otherwise(0)).alias("huge_features"),
        F.max(F.when(huge_feature, max_abs)).alias("max_abs_feature"),
        F.min(F.size(feats)).alias("min_len"),
        F.max(F.size(feats)).alias("max_len"),
        F.sum(F.when(bad_label, 1).otherwise(0)).alias("bad_labels"),
        F.sum(F.when(huge_label, 1).otherwise(0)).alias("huge_labels"),
        F.max(F.when(huge_label, F.abs(label))).alias("max_abs_label"),
        F.sum(F.when(is_fractional(label), 1).otherwise(0)).alias("fractional_labels"),
        F.sum(F.when(good_label & (label < 0), 1).otherwise(0)).alias("negative_labels"),
        F.max(F.when(good_label, label)).alias("max_label"),
        F.min(F.when(good_label, label)).alias("min_label"),
        F.sum(F.when(F.col(IS_VALIDATION), 1).otherwise(0)).alias("val_rows"),
        # Exact (decimal) sums of two 64-bit hashes of each row: unlike XOR, a row that appears
        # twice adds twice instead of cancelling out, and the order of rows is irrelevant. The
        # second hashes the first with a salt (one long, not the row again): two multisets of
        # rows that differ collide only where both sums agree.
        F.sum(row_hash.cast(_HASH_SUM)).alias("hash_a"),
        F.sum(F.xxhash64(F.lit(_SECOND_HASH_SALT), row_hash).cast(_HASH_SUM)).alias("hash_b"),
        *(_weight_aggregates(F.col(WEIGHT)) if weight_col else []),
    ).collect()[0]

    if row["rows"] == 0:
        raise ValueError("the training DataFrame is empty: expected at least one row, found 0")
    if row["bad_features"]:
        raise ValueError(f"`featuresCol` column {features_col!r} has null or NaN values in "
                         f"{row['bad_features']} of {row['rows']} rows; drop or impute them first")
    if row["huge_features"]:
        raise ValueError(_out_of_range_message("featuresCol", features_col, row["huge_features"],
                                               row["max_abs_feature"]))
    if row["min_len"] != row["max_len"]:
        raise ValueError(f"`featuresCol` column {features_col!r} must hold arrays of one length, "
                         f"found lengths from {row['min_len']} to {row['max_len']}")
    if row["min_len"] < 1:
        raise ValueError(f"`featuresCol` column {features_col!r} must hold non-empty vectors, found length 0")
    if row["bad_labels"]:
        raise ValueError(f"`labelCol` column {label_col!r} has null or NaN values in "
                         f"{row['bad_labels']} of {row['rows']} rows; drop them first")
    if row["huge_labels"]:
        raise ValueError(_out_of_range_message("labelCol", label_col, row["huge_labels"], row["max_abs_label"]))

    if task == "classification":
        num_classes = _check_classes(row, label_col, max_class_id)
        output_kind = "binary" if num_classes == 2 else "multiclass"
    else:
        num_classes, output_kind = 0, "regression"

    train_rows = row["rows"] - row["val_rows"]
    if train_rows == 0:
        raise ValueError("every row was assigned to validation: expected training rows, found 0; "
                         "check `validationCol` or lower `validationSplit`")
    if weight_col:
        _check_weights(row, weight_col)
    identity = {"hash": [str(row["hash_a"]), str(row["hash_b"])], "rows": row["rows"], "val": row["val_rows"],
                "dim": row["min_len"], **key_extra}
    if weight_col:  # weighted and unweighted materializations never share a key, whatever the hashes
        identity["weighted"] = True
    key = json.dumps(identity, sort_keys=True)
    return DataSummary(rows=int(row["rows"]), val_rows=int(row["val_rows"]), input_dim=int(row["min_len"]),
                       output_kind=output_kind, num_classes=num_classes,
                       fingerprint=hashlib.sha256(key.encode()).hexdigest()[:24], weighted=bool(weight_col))
