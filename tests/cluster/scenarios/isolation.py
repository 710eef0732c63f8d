"""Cluster scenario: proves the executors' /tmp is not the driver's, and that the shared dir is shared.
Then a distributed fit (the barrier backend, which both profiles have) with no storePath: the default
store would sit in the driver's local temp dir, which the executors cannot reach, so the fit must fail
fast and say so.

Usage: spark-submit isolation.py SHARED
"""
import json
import os
import socket
import sys
import tempfile
import time
import uuid

from pyspark.sql import SparkSession

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
name = f"deepflash-isolation-{uuid.uuid4().hex}"
driver_file = os.path.join(tempfile.gettempdir(), name)
shared_file = os.path.join(shared, name)
for path in (driver_file, shared_file):
    with open(path, "w") as f:
        f.write("driver")


def probe(index, _rows):
    time.sleep(2)  # both tasks run at once, one per worker (1 core each)
    yield {"cwd": os.getcwd(), "task": index, "host": socket.gethostname(), "pid": os.getpid(),
           "tmp": tempfile.gettempdir(),
           "sees_driver_tmp_file": os.path.exists(driver_file), "sees_shared_file": os.path.exists(shared_file),
           "tmp_entries": len(os.listdir("/tmp"))}


try:
    tasks = spark.sparkContext.parallelize(range(2), 2).mapPartitionsWithIndex(probe).collect()
finally:
    os.remove(driver_file)
    os.remove(shared_file)

from deepflash import KerasEstimator  # noqa: E402 - after the probe, which needs nothing of deepflash
from deepflash.data.datasets import load_digits  # noqa: E402

started = time.time()
try:
    KerasEstimator(backend="barrier", numProc=2, epochs=2, seed=1).fit(load_digits(spark))
    default_store = {"type": None, "message": None}
except Exception as e:  # noqa: BLE001 - the scenario reports whatever was raised
    default_store = {"type": type(e).__name__, "message": str(e)[:4000]}
default_store["seconds"] = time.time() - started
print("RESULT " + json.dumps({"driver": {"host": socket.gethostname(), "pid": os.getpid(),
                                         "tmp_entries": len(os.listdir("/tmp"))},
                              "tasks": tasks, "default_store": default_store}))
spark.stop()
