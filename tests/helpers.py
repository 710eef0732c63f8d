"""Small helpers shared by the tests."""
from __future__ import annotations

import numpy as np
import pandas as pd


def accuracy(predictions) -> float:
    from pyspark.sql import functions as F

    row = predictions.agg(F.avg((F.col("prediction") == F.col("label")).cast("double")).alias("acc")).first()
    return float(row["acc"])


def frame(spark, x: np.ndarray, y: np.ndarray, prefix: str = "f"):
    """A DataFrame with one double column per feature (``f0``, ``f1``, ...) and a double ``label``."""
    pdf = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=[f"{prefix}{i}" for i in range(x.shape[1])])
    pdf["label"] = np.asarray(y, dtype=np.float64)
    return spark.createDataFrame(pdf)
