"""Time series as supervised rows: look-back windows and the value ``horizon`` steps ahead.

:class:`LookBackWindow` is the Spark form (window functions over the DataFrame, nothing
collected); :func:`window_arrays` is the in-memory form, used where one task holds a sample of
the series (MAE random sampling, evolutionary search). Both give the same windows.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyspark.ml import Transformer
from pyspark.ml.param.shared import HasInputCol, HasInputCols, HasLabelCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from deepflash.data.schema import check_column, window_shape_metadata
from deepflash.ml.converters import add_accessors, to_number, to_str, to_str_list
from deepflash.ml.param_table import ParamSpec, declare_params, keyword_params, names, set_defaults

log = logging.getLogger("deepflash.ml.timeseries")


def window_arrays(values: np.ndarray, look_back: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Windows of an ordered series: ``x[i] = values[i : i + look_back]``,
    ``y[i] = values[i + look_back + horizon - 1]``.

    Args:
        values: shape ``(steps,)`` or ``(steps, k)``; a 1-D series is treated as ``k = 1``, and
            the first column is the target.
        look_back: window length, >= 1.
        horizon: how many steps after the window's last value the label lies, >= 1.

    Returns:
        ``x`` of shape ``(rows, look_back, k)`` and ``y`` of shape ``(rows,)``, where
        ``rows = steps - look_back - horizon + 1`` (0 when the series is too short).

    Example:
        >>> x, y = window_arrays(np.arange(5.0), look_back=2)
        >>> x[:, :, 0].tolist(), y.tolist()
        ([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]], [2.0, 3.0, 4.0])
    """
    for name, value in (("look_back", look_back), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` == {value!r}, must be an integer >= 1")
    series = np.asarray(values, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2:
        raise ValueError(f"expected values of shape (steps,) or (steps, k), found {series.shape}")
    rows = max(len(series) - look_back - horizon + 1, 0)
    idx = np.arange(rows)[:, None] + np.arange(look_back)[None, :]
    x = series[idx] if rows else np.zeros((0, look_back, series.shape[1]))
    y = series[look_back + horizon - 1: look_back + horizon - 1 + rows, 0]
    return x, y


WINDOW_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("inputCol", "the value column (one series value per row)", to_str("inputCol"), annotation="str"),
    ParamSpec("inputCols", "several value columns; the first is the target", to_str_list("inputCols"),
              annotation="list[str]"),
    ParamSpec("outputCol", "the window Vector column", to_str("outputCol"), "features"),
    ParamSpec("labelCol", "the target horizon steps ahead (double)", to_str("labelCol"), "label"),
    ParamSpec("lookBack", "window length: values before and at each row, >= 1",
              to_number("lookBack", integer=True, low=1), annotation="int"),
    ParamSpec("horizon", "steps from the window's last value to the label, >= 1",
              to_number("horizon", integer=True, low=1), 1),
    ParamSpec("orderBy", "the column that orders the series (required)", to_str("orderBy"), annotation="str"),
    ParamSpec("partitionBy", "columns whose values key separate series; empty: one series",
              to_str_list("partitionBy"), [], annotation="list[str]"),
)


class LookBackWindow(Transformer, HasInputCol, HasInputCols, HasOutputCol, HasLabelCol,
                     DefaultParamsReadable, DefaultParamsWritable):
    """Turns an ordered series into supervised rows: the previous ``lookBack`` values and the value
    ``horizon`` steps ahead.

    For the row at time ``t`` (in ``orderBy`` order, per ``partitionBy`` key) ``outputCol`` is a
    Vector of the values at ``t - lookBack + 1 .. t``, time-major (with k value columns: ``k``
    values per step, in ``inputCols`` order), and ``labelCol`` is the first value column at
    ``t + horizon``. It matches :func:`window_arrays` row for row. The first ``lookBack - 1`` rows
    of each series (no full window) and the last ``horizon`` (no label) are dropped:
    ``lookBack + horizon - 1`` per series, all of a shorter one; :meth:`droppedRows` counts them.
    ``outputCol``'s metadata records the window shape ``[lookBack, k]``, from which
    :class:`~deepflash.KerasEstimator` reshapes the vector for an ``lstm`` without an ``inputShape``.
    Null values become NaN (which the estimator's validation reports); ``orderBy`` ties leave the
    order among the tied rows to Spark.

    Args:
        inputCol: the value column (k = 1); or ``inputCols``: several (k = len), the first is the target.
        outputCol: the window Vector column (default ``features``).
        labelCol: the target ``horizon`` steps ahead, double (default ``label``).
        lookBack: window length, >= 1.
        horizon: steps from the window's last value to the label, >= 1 (default 1).
        orderBy: the column that orders the series (required: a DataFrame has no order).
        partitionBy: columns whose values key separate series (default: one series).

    Example:
        >>> window = LookBackWindow(inputCol="value", lookBack=10, orderBy="t")
        >>> rows = window.transform(datasets.sine_wave(spark, 500, period=50))
        >>> KerasEstimator(task="regression", layers=[{"type": "lstm", "units": 16}]).fit(rows)
    """

    @keyword_params(WINDOW_PARAMS)
    def __init__(self, **params: Any) -> None:
        super().__init__()
        set_defaults(self, WINDOW_PARAMS)
        self.setParams(**params)

    @keyword_params(WINDOW_PARAMS, returns="LookBackWindow")
    def setParams(self, **params: Any) -> LookBackWindow:
        """Sets Params by keyword (None leaves one as it is); returns self."""
        return self._set(**{k: v for k, v in params.items() if v is not None})

    def valueCols(self) -> list[str]:
        """The value columns: ``[inputCol]`` or ``inputCols``; raises if neither or both are set."""
        has_one, has_many = self.isSet(self.inputCol), self.isSet(self.inputCols)
        if has_one == has_many:
            found = "both" if has_one else "neither"
            raise ValueError(f"set exactly one of `inputCol` (one value column) and `inputCols` (several), found "
                             f"{found}")
        cols = [self.getInputCol()] if has_one else list(self.getInputCols())
        if not cols:
            raise ValueError("`inputCols` == [], must name at least one value column")
        return cols

    def _check(self, dataset: DataFrame) -> tuple[list[str], Window]:
        """Every check on the Params and the schema (no Spark job); the value columns and the window."""
        if not self.isDefined(self.lookBack):
            raise ValueError("`lookBack` is not set: set the window length, an integer >= 1")
        if not self.isDefined(self.orderBy):
            raise ValueError("`orderBy` is not set: a DataFrame has no order, so name the column that orders "
                             "the series, e.g. orderBy='t'")
        cols = self.valueCols()
        for name in cols:
            param = "inputCol" if self.isSet(self.inputCol) else "inputCols"
            check_column(dataset, param, name)
            dtype = dataset.schema[name].dataType
            if not isinstance(dtype, NumericType):
                raise TypeError(f"`{param}` column {name!r} must be numeric, found {dtype.simpleString()}")
        check_column(dataset, "orderBy", self.getOrderBy())
        for name in self.getPartitionBy():
            check_column(dataset, "partitionBy", name)
        for param, name in (("outputCol", self.getOutputCol()), ("labelCol", self.getLabelCol())):
            if name in dataset.columns:
                raise ValueError(f"`{param}` == {name!r}: the DataFrame already has that column; pick another name")
        if self.getOutputCol() == self.getLabelCol():
            raise ValueError(f"`outputCol` and `labelCol` are both {self.getOutputCol()!r}; they must differ")
        return cols, Window.partitionBy(*self.getPartitionBy()).orderBy(self.getOrderBy())

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import array_to_vector

        cols, window = self._check(dataset)
        look_back, horizon = self.getLookBack(), self.getHorizon()
        values = {c: F.coalesce(F.col(c).cast("double"), F.lit(float("nan"))) for c in cols}
        # lag(value, j) over the series: the window's step t - j; a lag or lead of a constant is
        # null exactly where the series has no such row, whatever the values hold.
        steps = [F.lag(values[c], j).over(window) for j in range(look_back - 1, -1, -1) for c in cols]
        full = (F.lag(F.lit(1), look_back - 1).over(window).isNotNull()
                & F.lead(F.lit(1), horizon).over(window).isNotNull())
        out, label, keep = self.getOutputCol(), self.getLabelCol(), "__deepflash_keep"
        features = array_to_vector(F.array(*steps)).alias(
            out, metadata=window_shape_metadata([look_back, len(cols)]))
        windowed = dataset.select("*", features, F.lead(values[cols[0]], horizon).over(window).alias(label),
                                  full.alias(keep))
        log.info("LookBackWindow drops the first %d and the last %d row(s) of each series%s (droppedRows counts "
                 "them)", look_back - 1, horizon,
                 f" (per {', '.join(self.getPartitionBy())})" if self.getPartitionBy() else "")
        return windowed.where(F.col(keep)).drop(keep)

    def windowShape(self) -> list[int]:
        """``[lookBack, k]``: the shape of one window, as recorded in ``outputCol``'s metadata."""
        if not self.isDefined(self.lookBack):
            raise ValueError("`lookBack` is not set: set the window length, an integer >= 1")
        return [self.getLookBack(), len(self.valueCols())]

    def droppedRows(self, dataset: DataFrame) -> int:
        """How many rows of ``dataset`` :meth:`transform` drops (one aggregation job), logged.

        Per series (``partitionBy`` key) of ``n`` rows it drops ``min(n, lookBack + horizon - 1)``.
        """
        self._check(dataset)
        per_series = self.getLookBack() + self.getHorizon() - 1
        counts = dataset.groupBy(*self.getPartitionBy()).count()
        row = counts.agg(F.sum(F.least(F.col("count"), F.lit(per_series))).alias("dropped"),
                         F.count(F.lit(1)).alias("series")).first()
        dropped = int(row["dropped"] or 0)
        log.info("LookBackWindow drops %d row(s) of %d series (lookBack %d, horizon %d)", dropped, row["series"],
                 self.getLookBack(), self.getHorizon())
        return dropped


declare_params(LookBackWindow, WINDOW_PARAMS)
add_accessors(LookBackWindow, names(WINDOW_PARAMS))
