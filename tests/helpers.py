"""Small helpers shared by the tests."""
from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.request
import uuid

import numpy as np
import pandas as pd
import pytest


class ConfSession:
    """A stand-in for a SparkSession that only answers ``spark.conf.get(key, default)`` from
    ``values``: what deepflash.spark.session, slots and fs.qualify read of a session."""

    def __init__(self, values: dict | None = None, **settings: str):
        self.conf = self
        self.values = {**(values or {}), **settings}

    def get(self, key, default=None):
        return self.values.get(key, default)


def accuracy(predictions) -> float:
    from pyspark.sql import functions as F

    row = predictions.agg(F.avg((F.col("prediction") == F.col("label")).cast("double")).alias("acc")).first()
    return float(row["acc"])


def frame(spark, x: np.ndarray, y: np.ndarray, prefix: str = "f"):
    """A DataFrame with one double column per feature (``f0``, ``f1``, ...) and a double ``label``."""
    pdf = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=[f"{prefix}{i}" for i in range(x.shape[1])])
    pdf["label"] = np.asarray(y, dtype=np.float64)
    return spark.createDataFrame(pdf)


@contextlib.contextmanager
def job_group(spark, prefix: str):
    """Runs the block's Spark jobs in a fresh job group and yields its id, so that a test can count
    them afterwards with ``statusTracker().getJobIdsForGroup``."""
    sc = spark.sparkContext
    group = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, f"{prefix} test")
    try:
        yield group
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)


def fails_cleanly(spark, store_dir, df, est, error, match, *, no_job: bool):
    """Fits, expects ``error`` matching ``match``; checks no store write and (optionally) no Spark job."""
    with job_group(spark, "validation") as group:
        with pytest.raises(error, match=match):
            est.setStorePath(store_dir).fit(df)
    assert not os.path.exists(store_dir), f"something was written to the store: {os.listdir(store_dir)}"
    if no_job:
        assert spark.sparkContext.statusTracker().getJobIdsForGroup(group) == []


@contextlib.contextmanager
def raises_before_any_job(spark, error, match):
    """Expects the block to raise ``error`` matching ``match`` without running a Spark job."""
    with job_group(spark, "no-job") as group:
        with pytest.raises(error, match=match):
            yield
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group) == []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc, log_path, timeout: float = 120.0) -> float:
    """Waits, at most ``timeout`` seconds, until ``url`` answers 200 while server ``proc`` lives;
    returns the seconds waited. Fails with the tail of the server's log otherwise."""
    started = time.time()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.time() - started
        except OSError:
            pass
        if proc.poll() is not None or time.time() - started > timeout:
            raise AssertionError(f"{url} did not answer within {timeout:.0f}s (server exit code {proc.poll()}): "
                                 f"{open(log_path).read()[-3000:]}")
        time.sleep(0.5)


def gone_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` of this host is gone (or a zombie) within ``seconds``."""
    import time

    from deepflash.processes import pid_alive

    deadline = time.time() + seconds
    while time.time() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)
