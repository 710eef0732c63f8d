"""The validation pass refuses values a float32 network cannot train on and labels that are no
classes: inf, -inf and |x| beyond float32 in features, labels and weights; one class; class ids
above ``maxClassId``. Each is one aggregation, no training."""
from __future__ import annotations

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from deepflash.data.schema import prepare, summarize

INF = float("inf")
SCHEMA = StructType([StructField("pixels", VectorUDT()), StructField("target", DoubleType()),
                     StructField("w", DoubleType())])


def _summary(spark, rows, task="regression", max_class_id=None, weighted=False):
    df = spark.createDataFrame([(Vectors.dense(f), float(y), 1.0 if w is None else float(w))
                                for f, y, *rest in rows for w in [rest[0] if rest else None]], SCHEMA)
    prepared = prepare(df, "pixels", "target", None, 0.0, 1, weight_col="w" if weighted else None)
    return summarize(prepared, task=task, features_col="pixels", label_col="target", key_extra={},
                     weight_col="w" if weighted else None, max_class_id=max_class_id)


GOOD = [([0.0, 1.0], 0.0), ([1.0, 0.0], 1.0)]


@pytest.mark.parametrize("rows, task, match", [
    ([([1.0, INF], 0.0), ([-INF, 0.0], 1.0), ([1e39, 2.0], 0.0)] + GOOD, "classification",
     r"^`featuresCol` column 'pixels' holds 3 rows with inf/-inf or values beyond float32 \(largest \|x\| inf\)"),
    ([([1.0, 1e39], 0.0), ([-3e38 * 2, 0.0], 1.0)] + GOOD, "regression",
     r"^`featuresCol` column 'pixels' holds 2 rows with inf/-inf or values beyond float32 \(largest \|x\| 1e\+39\)"),
    ([([1.0, 2.0], INF)] + GOOD, "regression",
     r"^`labelCol` column 'target' holds 1 rows with inf/-inf or values beyond float32 \(largest \|x\| inf\)"),
    ([([1.0, 2.0], -1e39), ([1.0, 2.0], 1e39)] + GOOD, "regression",
     r"^`labelCol` column 'target' holds 2 rows with inf/-inf or values beyond float32 \(largest \|x\| 1e\+39\)"),
    ([([1.0, 2.0], 1e39)] + GOOD, "classification", r"^`labelCol` column 'target' holds 1 rows with inf/-inf"),
])
def test_values_beyond_float32_are_refused(spark, rows, task, match):
    with pytest.raises(ValueError, match=match):
        _summary(spark, rows, task)


def test_weight_beyond_float32_says_the_largest(spark):
    with pytest.raises(ValueError, match=r"^`weightCol` column 'w' has 1 infinite value\(s\) or value\(s\) beyond "
                                         r"float32 \(> 3\.403e\+38; largest \|x\| 1e\+39\)"):
        _summary(spark, [([0.0, 1.0], 0.0, 1e39), ([1.0, 0.0], 1.0, 1.0)], weighted=True)


@pytest.mark.parametrize("label", [1.0, 3.0])
def test_a_single_class_is_refused_whatever_its_id(spark, label):
    with pytest.raises(ValueError, match=rf"^`labelCol` column 'target' has a single class \({int(label)}\) for task "
                                         r"'classification': expected at least two classes$"):
        _summary(spark, [([0.0, 1.0], label), ([1.0, 0.0], label)], "classification")


def test_class_ids_above_max_class_id_are_refused(spark):
    with pytest.raises(ValueError, match=r"^`labelCol` column 'target' holds class id 1000000000, above `maxClassId` "
                                         r"== 10000 \(the network would get 1000000001 outputs\)"):
        _summary(spark, GOOD + [([1.0, 1.0], 1e9)], "classification", max_class_id=10_000)


def test_finite_data_within_bounds_passes(spark):
    summary = _summary(spark, GOOD + [([3e38, -3e38], 2.0)], "classification", max_class_id=2)
    assert (summary.rows, summary.num_classes, summary.output_kind) == (3, 3, "multiclass")
