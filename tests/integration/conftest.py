from __future__ import annotations

import pytest

from helpers import frame


@pytest.fixture(scope="session")
def digits_columns(spark):
    """Digits as 64 numeric pixel columns (for VectorAssembler), split 80/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    train, test = frame(spark, d.data, d.target, "px").randomSplit([0.8, 0.2], seed=3)
    return train.cache(), test.cache()


@pytest.fixture()
def store_dir(tmp_path):
    path = tmp_path / "store"
    return str(path)
