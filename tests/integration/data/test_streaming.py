"""Read modes on Horovod with 2 processes, sharded validation, and a fit beyond its memory budget."""
from __future__ import annotations

import pytest
from pyspark.ml.feature import StandardScaler

from deepflash import KerasEstimator
from deepflash.data.pipeline import encode_targets
from deepflash.data.readers import get_reader
from helpers import accuracy

pytestmark = [pytest.mark.horovod, pytest.mark.slow]

SETTINGS = dict(featuresCol="scaled", backend="horovod", numProc=2, epochs=8, batchSize=32, learningRate=0.003,
                seed=3, shuffleBufferRows=200, layers=[{"type": "dense", "units": 64, "activation": "relu"}])


@pytest.fixture(scope="module")
def scaled_digits(digits):
    train, test = digits
    scaler = StandardScaler(inputCol="features", outputCol="scaled").fit(train)
    return scaler.transform(train).cache(), scaler.transform(test).cache()


@pytest.fixture(scope="module")
def fits(scaled_digits, tmp_path_factory):
    train, _ = scaled_digits
    store = str(tmp_path_factory.mktemp("store"))
    return {mode: KerasEstimator(readMode=mode, storePath=store, **SETTINGS).fit(train)
            for mode in ("memory", "stream")}


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_each_read_mode_trains_on_two_horovod_processes(fits, scaled_digits, mode):
    model = fits[mode]
    assert model.fitInfo.read_mode == mode
    assert accuracy(model.transform(scaled_digits[1])) >= 0.93
    rows = model.fitInfo.rows_read_per_rank
    assert len(rows) == 2
    if mode == "memory":  # each rank holds its half
        assert all(abs(r - sum(rows) / 2) <= 0.1 * sum(rows) for r in rows)
    else:                 # nothing is held whole
        assert rows == [-1, -1]


def test_auto_streams_when_the_shard_exceeds_the_memory_budget(scaled_digits, tmp_path):
    train, test = scaled_digits
    # 1281 rows x 65 floats x 4 bytes x 2 per shard is ~0.3 MB: a 0.05 MB budget cannot hold it.
    model = KerasEstimator(readMode="auto", memoryBudgetMB=0.05, storePath=str(tmp_path), **SETTINGS).fit(train)
    assert model.fitInfo.read_mode == "stream"
    assert accuracy(model.transform(test)) >= 0.93
    roomy = KerasEstimator(readMode="auto", storePath=str(tmp_path), **{**SETTINGS, "epochs": 1}).fit(train)
    assert roomy.fitInfo.read_mode == "memory"


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_sharded_validation_equals_validation_on_every_row(fits, mode):
    """Each rank evaluates half the validation rows; the combined metric is the full-set metric."""
    model = fits[mode]
    val = get_reader("arrow").load(model.fitInfo.data["val_url"])
    assert len(val.labels) > 50
    net = model.getKerasModel()
    net.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    full = net.evaluate(val.features, encode_targets(val.labels, "sparse", 10), batch_size=1024, verbose=0,
                        return_dict=True)
    history = model.getHistory()
    assert history["val_loss"][-1] == pytest.approx(full["loss"], rel=1e-5)
    assert history["val_accuracy"][-1] == pytest.approx(full["accuracy"], abs=1e-6)
