"""LookBackWindow's Params and sine_wave's argument checks (pure Python: no SparkSession here)."""
from __future__ import annotations

import pytest

from deepflash.data.datasets import sine_wave
from deepflash.ml.timeseries import LookBackWindow

NAMES = ["inputCol", "inputCols", "outputCol", "labelCol", "lookBack", "horizon", "orderBy", "partitionBy"]


def test_builds_with_no_arguments_with_defaults():
    lw = LookBackWindow()
    assert (lw.getOutputCol(), lw.getLabelCol(), lw.getHorizon(), lw.getPartitionBy()) == \
        ("features", "label", 1, [])
    assert not lw.isDefined(lw.lookBack) and not lw.isDefined(lw.orderBy)


@pytest.mark.parametrize("name, value, expected", [
    ("inputCol", "v", "v"), ("inputCols", ["a", "b"], ["a", "b"]), ("outputCol", "x", "x"), ("labelCol", "y", "y"),
    ("lookBack", 3.0, 3), ("horizon", 2, 2), ("orderBy", "t", "t"), ("partitionBy", "key", ["key"])])
def test_setters_return_self_and_getters_convert(name, value, expected):
    lw = LookBackWindow()
    assert getattr(lw, "set" + name[0].upper() + name[1:])(value) is lw
    assert getattr(lw, "get" + name[0].upper() + name[1:])() == expected
    assert LookBackWindow(**{name: value}).getOrDefault(name) == expected


@pytest.mark.parametrize("kwargs, match", [
    ({"lookBack": 0}, r"`lookBack` == 0, must be >= 1"),
    ({"lookBack": -2}, r"`lookBack` == -2, must be >= 1"),
    ({"lookBack": 1.5}, r"`lookBack` == 1.5, must be an integer"),
    ({"horizon": 0}, r"`horizon` == 0, must be >= 1"),
    ({"orderBy": 3}, r"`orderBy` == 3, must be a string"),
    ({"partitionBy": [1]}, r"`partitionBy` == \[1\], must be a list of strings"),
])
def test_bad_values_are_refused_naming_the_param(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        LookBackWindow(**kwargs)


def test_copy_carries_values_and_is_independent():
    lw = LookBackWindow(inputCols=["a", "b"], lookBack=4, horizon=2, orderBy="t", partitionBy=["k"])
    twin = lw.copy({lw.lookBack: 6})
    assert twin.getLookBack() == 6 and lw.getLookBack() == 4
    assert [twin.getOrDefault(n) for n in NAMES[1:] if n != "lookBack"] == \
        [lw.getOrDefault(n) for n in NAMES[1:] if n != "lookBack"]
    assert twin.windowShape() == [6, 2]


def test_value_columns_need_exactly_one_of_input_col_and_input_cols():
    with pytest.raises(ValueError, match="set exactly one of `inputCol`.*found neither"):
        LookBackWindow(lookBack=2).windowShape()
    with pytest.raises(ValueError, match="set exactly one of `inputCol`.*found both"):
        LookBackWindow(inputCol="a", inputCols=["b"], lookBack=2).windowShape()
    assert LookBackWindow(inputCol="a", lookBack=5).windowShape() == [5, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0, "period": 10}, r"`n` == 0, must be an integer >= 1"),
    ({"n": 10, "period": 0}, r"`period` == 0, must be a number > 0"),
    ({"n": 10, "period": 5, "noise": -0.1}, r"`noise` == -0.1, must be a number >= 0"),
    ({"n": 10, "period": 5, "seed": 1.5}, r"`seed` == 1.5, must be an integer or None"),
])
def test_sine_wave_checks_its_arguments_before_touching_spark(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sine_wave(None, **kwargs)
