"""Benchmark: what checking the written Parquet adds to materialization.

Materialization counts and scans the rows it wrote before committing them
(:func:`deepflash.data.verify.verify_written`): on the driver with ``pyarrow`` up to
``DRIVER_SCAN_BYTES``, with one Spark job above. This times both scans on the same data, against
the validation pass and the write, by calling :func:`~deepflash.data.materialize.materialize`
itself (its ``verify_seconds``) once per scan, each into a fresh store.

    .venv/bin/python -m benchmarks.written_check            # digits and Fashion-MNIST 60k
"""
from __future__ import annotations

import os
import tempfile
import time


def written_check_benchmark(df, store: str, label: str) -> dict:
    """Validation, write and check seconds of materializing ``df`` (features, label) with each scan."""
    from deepflash.data import verify
    from deepflash.data.materialize import materialize
    from deepflash.data.schema import prepare, summarize
    from deepflash.io import fs
    from deepflash.io.store import Store

    prepared = prepare(df, "features", "label", None, 0.1, 0)
    started = time.time()
    summary = summarize(prepared, task="classification", features_col="features", label_col="label", key_extra={})
    out = {"label": label, "rows": summary.rows, "dim": summary.input_dim, "validate_seconds": time.time() - started}
    default = verify.DRIVER_SCAN_BYTES
    try:
        for scan, limit in (("driver", 1 << 62), ("spark", -1)):
            verify.DRIVER_SCAN_BYTES = limit
            data = materialize(prepared, summary, Store(fs.qualify(os.path.join(store, scan))), 2)
            out[scan] = {"write_seconds": data.seconds - data.verify_seconds, "check_seconds": data.verify_seconds,
                         "mb": data.bytes / 1e6}
    finally:
        verify.DRIVER_SCAN_BYTES = default
    return out


def report_lines(results: list[dict]) -> list[str]:
    lines = ["", "Checking the written Parquet before commit (rows trained = rows validated)", "",
             "| data | rows x dim | Parquet MB | validation pass s | write s | check on driver s "
             "| check as Spark job s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['rows']} x {r['dim']} | {r['driver']['mb']:.0f} | "
                     f"{r['validate_seconds']:.2f} | {r['driver']['write_seconds']:.2f} | "
                     f"{r['driver']['check_seconds']:.2f} | {r['spark']['check_seconds']:.2f} |")
    return lines


def main() -> int:
    from pyspark.sql import SparkSession

    from deepflash.data import datasets

    spark = (SparkSession.builder.master("local[2]").appName("deepflash-written-check")
             .config("spark.driver.memory", "3g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    frames = [("digits", datasets.load_digits(spark))]
    fashion = "/usr/share/datasets/fashion-mnist"
    if os.path.isdir(fashion):
        x, y = datasets.load_idx_numpy(fashion, "train")
        frames.append(("Fashion-MNIST", datasets.from_numpy(spark, x, y, num_partitions=8)))
    results = []
    with tempfile.TemporaryDirectory(prefix="deepflash-bench-verify-") as store:
        for label, df in frames:
            df = df.cache()
            df.count()
            results.append(written_check_benchmark(df, os.path.join(store, label), label))
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
