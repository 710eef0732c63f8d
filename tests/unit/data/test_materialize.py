"""Materialization's console line: the throughput of the Parquet write it reports is the bytes on the
store over the write's seconds."""
from __future__ import annotations

import logging
import os
import re

import pytest
from pyspark.sql import functions as F

from deepflash.data.materialize import _megabytes, materialize
from deepflash.data.schema import prepare, summarize
from deepflash.io import fs
from deepflash.io.store import Store

LINE = re.compile(r"^materialized (\d+) train / (\d+) val rows to (\S+) in ([\d.]+)s \(wrote (\S+) MB of Parquet in "
                  r"([\d.]+)s: (\d+) rows/s, (\S+) MB/s; checked in ([\d.]+)s\)$")


def _parquet_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(directory)
               for name in names if name.endswith(".parquet") and not name.startswith((".", "_")))


def test_the_throughput_is_the_parquet_written_over_the_write_seconds(spark, tmp_path, caplog):
    df = spark.range(300).select(F.array(*[(F.col("id") * k).cast("double") for k in range(16)]).alias("pixels"),
                                 (F.col("id") % 3).cast("double").alias("target"))
    prepared = prepare(df, "pixels", "target", None, 0.2, 1)
    summary = summarize(prepared, task="classification", features_col="pixels", label_col="target", key_extra={})
    store = Store(fs.qualify(str(tmp_path / "store")))
    with caplog.at_level(logging.INFO, logger="deepflash"):
        data = materialize(prepared, summary, store, 1)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("materialized ")]
    found = LINE.match(line)
    assert found, line
    train, val, where, seconds, mb, write, rows_per_s, mb_per_s, checked = found.groups()
    dataset = os.path.dirname(fs.local_path(data.train_url))
    assert fs.local_path(where) == dataset and (int(train), int(val)) == (data.train_rows, data.val_rows) == \
        (summary.rows - summary.val_rows, summary.val_rows)
    # The bytes are the Parquet files on the store (no .crc, meta.json or marker), measured after the write.
    assert data.bytes == _parquet_bytes(dataset) > 0
    assert 0 < data.write_seconds < data.seconds and data.verify_seconds < data.seconds
    assert mb == _megabytes(data.bytes) and float(write) == pytest.approx(data.write_seconds, abs=0.005)
    assert int(rows_per_s) == round(300 / data.write_seconds)
    assert mb_per_s == _megabytes(data.bytes / data.write_seconds) and float(mb_per_s) > 0
    assert float(seconds) == pytest.approx(data.seconds, abs=0.05)
    again = materialize(prepared, summary, store, 1)
    assert again.reused and again.bytes == again.write_seconds == 0


@pytest.mark.parametrize("nbytes, shown", [(0, "0"), (41_234, "0.0412"), (3_071_000, "3.07"), (512_300_000, "512"),
                                           (4_567_800_000, "4568")])
def test_megabytes_keep_three_significant_digits(nbytes, shown):
    assert _megabytes(nbytes) == shown
