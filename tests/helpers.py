"""Small helpers shared by the tests."""
from __future__ import annotations

import contextlib
import os
import uuid

import numpy as np
import pandas as pd
import pytest


def accuracy(predictions) -> float:
    from pyspark.sql import functions as F

    row = predictions.agg(F.avg((F.col("prediction") == F.col("label")).cast("double")).alias("acc")).first()
    return float(row["acc"])


def frame(spark, x: np.ndarray, y: np.ndarray, prefix: str = "f"):
    """A DataFrame with one double column per feature (``f0``, ``f1``, ...) and a double ``label``."""
    pdf = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=[f"{prefix}{i}" for i in range(x.shape[1])])
    pdf["label"] = np.asarray(y, dtype=np.float64)
    return spark.createDataFrame(pdf)


def fails_cleanly(spark, store_dir, df, est, error, match, *, no_job: bool):
    """Fits, expects ``error`` matching ``match``; checks no store write and (optionally) no Spark job."""
    sc = spark.sparkContext
    group = f"validation-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "validation test")
    try:
        with pytest.raises(error, match=match):
            est.setStorePath(store_dir).fit(df)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert not os.path.exists(store_dir), f"something was written to the store: {os.listdir(store_dir)}"
    if no_job:
        assert sc.statusTracker().getJobIdsForGroup(group) == []


@contextlib.contextmanager
def raises_before_any_job(spark, error, match):
    """Expects the block to raise ``error`` matching ``match`` without running a Spark job."""
    sc = spark.sparkContext
    group = f"no-job-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "no-job test")
    try:
        with pytest.raises(error, match=match):
            yield
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup(group) == []
