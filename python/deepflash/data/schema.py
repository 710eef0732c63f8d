"""Validation of the training DataFrame on the driver.

Schema checks need no Spark job. Value checks (nulls, NaN, array lengths, labels, weights,
emptiness) are done in a single aggregation that also yields the row counts and a fingerprint of the
data, so validation and cache keying cost one pass over the data and nothing is written
before the data has been found valid.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BooleanType, NumericType

FEATURES = "features"
LABEL = "label"
WEIGHT = "weight"
IS_VALIDATION = "is_validation"
# 20 digits hold any 64-bit hash; 38 hold the sum of 2**63 of them without overflow.
_HASH_SUM = "decimal(38,0)"
_SECOND_HASH_SALT = "deepflash-fingerprint-2"
# Weights are materialized as float32: a larger one would become infinite.
_FLOAT32_MAX = 3.4028234663852886e38
# Column metadata: {"deepflash": {"window_shape": [lookBack, k]}} on a LookBackWindow's output.
METADATA_KEY = "deepflash"
WINDOW_SHAPE_KEY = "window_shape"


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


def features_as_array(df: DataFrame, param: str, name: str) -> Column:
    """The feature column as ``array<float>``; raises if it is neither a Vector nor a numeric array."""
    check_column(df, param, name)
    dtype = df.schema[name].dataType
    if isinstance(dtype, VectorUDT):
        return vector_to_array(F.col(name), "float32")
    if isinstance(dtype, ArrayType) and isinstance(dtype.elementType, NumericType):
        return F.col(name).cast("array<float>")
    raise TypeError(
        f"`{param}` column {name!r} must be a Vector or an array of numbers, found {dtype.simpleString()}; "
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
    """Projects to (features array<float>, label double, [weight double,] is_validation boolean).

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
    return df.select(features.alias(FEATURES), F.col(label_col).cast("double").alias(LABEL), *weight,
                     is_val.alias(IS_VALIDATION))


def _weight_aggregates(weight: Column) -> list[Column]:
    """The weight checks' part of the validation pass."""
    bad = weight.isNull() | F.isnan(weight)
    good = ~bad
    return [
        F.sum(F.when(bad, 1).otherwise(0)).alias("bad_weights"),
        F.sum(F.when(good & (weight < 0), 1).otherwise(0)).alias("negative_weights"),
        F.min(F.when(good, weight)).alias("min_weight"),
        F.sum(F.when(good & (F.abs(weight) > _FLOAT32_MAX), 1).otherwise(0)).alias("infinite_weights"),
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
                         f"or value(s) beyond float32 (> {_FLOAT32_MAX:.4g}); weights must be finite")
    if not row["positive_train_weights"]:
        train_rows = row["rows"] - row["val_rows"]
        raise ValueError(f"`weightCol` column {weight_col!r} is 0 in all {train_rows} training rows: expected at "
                         "least one weight > 0, found none, so there is nothing to learn from")


def summarize(prepared: DataFrame, *, task: str, features_col: str, label_col: str,
              key_extra: dict, weight_col: str | None = None) -> DataSummary:
    """Runs the single validation pass; raises ValueError naming the column on bad data.

    With ``weight_col`` the prepared data has a WEIGHT column (:func:`prepare`): the same pass
    checks it and the fingerprint covers it.
    """
    feats, label = F.col(FEATURES), F.col(LABEL)
    bad_feature = feats.isNull() | F.exists(feats, lambda x: x.isNull() | F.isnan(x))
    bad_label = label.isNull() | F.isnan(label)
    good_label = ~bad_label
    # Without weights the row hash is what it always was, so earlier materializations stay valid.
    hashed = [feats, label, F.col(IS_VALIDATION)] + ([F.col(WEIGHT)] if weight_col else [])
    row = prepared.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(bad_feature, 1).otherwise(0)).alias("bad_features"),
        F.min(F.size(feats)).alias("min_len"),
        F.max(F.size(feats)).alias("max_len"),
        F.sum(F.when(bad_label, 1).otherwise(0)).alias("bad_labels"),
        F.sum(F.when(good_label & (label != F.floor(label)), 1).otherwise(0)).alias("fractional_labels"),
        F.sum(F.when(good_label & (label < 0), 1).otherwise(0)).alias("negative_labels"),
        F.max(F.when(good_label, label)).alias("max_label"),
        F.sum(F.when(F.col(IS_VALIDATION), 1).otherwise(0)).alias("val_rows"),
        # Exact (decimal) sums of two independent 64-bit row hashes: unlike XOR, a row that
        # appears twice adds twice instead of cancelling out, and the order of rows is irrelevant.
        F.sum(F.xxhash64(*hashed).cast(_HASH_SUM)).alias("hash_a"),
        F.sum(F.xxhash64(F.lit(_SECOND_HASH_SALT), *hashed).cast(_HASH_SUM)).alias("hash_b"),
        *(_weight_aggregates(F.col(WEIGHT)) if weight_col else []),
    ).collect()[0]

    if row["rows"] == 0:
        raise ValueError("the training DataFrame is empty: expected at least one row, found 0")
    if row["bad_features"]:
        raise ValueError(f"`featuresCol` column {features_col!r} has null or NaN values in "
                         f"{row['bad_features']} of {row['rows']} rows; drop or impute them first")
    if row["min_len"] != row["max_len"]:
        raise ValueError(f"`featuresCol` column {features_col!r} must hold arrays of one length, "
                         f"found lengths from {row['min_len']} to {row['max_len']}")
    if row["min_len"] < 1:
        raise ValueError(f"`featuresCol` column {features_col!r} must hold non-empty vectors, found length 0")
    if row["bad_labels"]:
        raise ValueError(f"`labelCol` column {label_col!r} has null or NaN values in "
                         f"{row['bad_labels']} of {row['rows']} rows; drop them first")

    if task == "classification":
        if row["fractional_labels"] or row["negative_labels"]:
            raise ValueError(
                f"`labelCol` column {label_col!r} must hold class ids 0, 1, 2, ... for task 'classification', "
                f"found {row['fractional_labels']} non-integer and {row['negative_labels']} negative labels; "
                "index labels with StringIndexer, or use task='regression'")
        num_classes = int(row["max_label"]) + 1
        if num_classes < 2:
            raise ValueError(f"`labelCol` column {label_col!r} has a single class (0) for task "
                             "'classification': expected at least two classes")
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
