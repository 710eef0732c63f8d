"""The executor check's pure parts: the probe, how executors compare with the driver, the messages,
and the worker exception pulled out of Spark's error text."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import subprocess
import sys

import pytest

import deepflash
from deepflash.backends.executor_env import (
    PROBE_MODULE,
    PythonEnvironment,
    format_error,
    probe,
    problems,
    shippable,
    summary,
)
from deepflash.backends.stage import worker_exception

DRIVER = PythonEnvironment(host="driver-host", python="/opt/venv/bin/python", python_version="3.11.7",
                           workdir="/home/me", deepflash="0.1.0", tensorflow="2.15.1", keras="2.15.0")
GOOD = dataclasses.replace(DRIVER, host="worker-1", workdir="/spark/work/app-1/0")
BARE = dataclasses.replace(GOOD, python="/usr/bin/python3", deepflash=None,
                           deepflash_error="ModuleNotFoundError: No module named 'deepflash'",
                           tensorflow=None, keras=None)
SETTING = "this session starts `python3` there, as PYSPARK_PYTHON was unset when it started"

# A barrier stage whose Python worker could not unpickle its task (Spark 4.0, abridged JVM frames).
SPARK_40_BARRIER = """An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a failed barrier ResultStage. Most recent failure reason: Stage failed because barrier task ResultTask(0, 1) finished unsuccessfully.
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/worker.py", line 2024, in main
    func, profiler, deserializer, serializer = read_command(pickleSer, infile)
                                               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/serializers.py", line 500, in loads
    return cloudpickle.loads(obj, encoding=encoding)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
ModuleNotFoundError: No module named 'deepflash'

	at org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:581)
	at org.apache.spark.api.python.PythonRunner$$anon$3.read(PythonRunner.scala:962)
	at java.base/java.lang.Thread.run(Thread.java:840)

Driver stacktrace:
	at org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2935)
	at py4j.ClientServerConnection.run(ClientServerConnection.java:108)
	at java.base/java.lang.Thread.run(Thread.java:840)
"""
# The same on Spark 4.3: the traceback starts mid-line and an SQLSTATE follows the exception.
SPARK_43_BARRIER = """An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a failed barrier ResultStage. Most recent failure reason: Stage failed because barrier task ResultTask(0, 0) finished unsuccessfully.
org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/worker.py", line 4197, in invoke_udf
    func, profiler, deserializer, serializer = read_command(pickleSer, init_info.udf_info)
                                               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/serializers.py", line 483, in loads
    return cloudpickle.loads(obj, encoding=encoding)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
ModuleNotFoundError: No module named 'deepflash'
 SQLSTATE: 38000
	at org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:1097)
	at java.base/java.lang.Thread.run(Thread.java:840)
"""
# A DataFrame job's PythonException as pyspark raises it (captured), a worker of another Python.
CAPTURED_UDF = """
  An exception was thrown from the Python worker. Please see the stack trace below.
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/worker.py", line 2028, in main
    func, profiler, deserializer, serializer = read_udfs(pickleSer, infile, eval_type)
pyspark.errors.exceptions.base.PySparkRuntimeError: [PYTHON_VERSION_MISMATCH] Python in worker has different version: 3.10 than that in driver: 3.11, PySpark cannot run with different minor versions.
Please check environment variables PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON are correctly set."""
CHAINED = """org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/app/train.py", line 3, in load
    import tensorflow
ImportError: libcudart.so.12: cannot open shared object file

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/train.py", line 5, in load
    raise RuntimeError("TensorFlow cannot load here")
RuntimeError: TensorFlow cannot load here
	at org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:581)
"""


def _installed(name: str) -> str:
    """The version of the distribution that provides ``name`` (``tensorflow-cpu`` provides tensorflow)."""
    return importlib.metadata.version(importlib.metadata.packages_distributions()[name][0])


def test_the_probe_reports_this_python_and_its_packages():
    env = PythonEnvironment.from_json(probe(0))
    assert env.python == sys.executable
    assert env.python_version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert env.deepflash == deepflash.__version__ and env.deepflash_error is None
    assert env.tensorflow == _installed("tensorflow")
    assert env.keras == _installed("keras")


def test_the_shipped_probe_runs_where_deepflash_cannot_be_imported():
    from pyspark import cloudpickle

    shipped = shippable(probe)
    assert shipped.__module__ == PROBE_MODULE and shipped(0) == probe(0)
    # Unpickled where importing deepflash fails: a pickle by reference would fail to load.
    code = ("import pickle, sys; sys.modules['deepflash'] = None; "
            "print(pickle.loads(sys.stdin.buffer.read())(0))")
    out = subprocess.run([sys.executable, "-c", code], input=cloudpickle.dumps(shipped), capture_output=True,
                         timeout=120, check=True)
    env = PythonEnvironment.from_json(out.stdout.decode())
    assert env.deepflash is None and "deepflash" in env.deepflash_error
    assert env.tensorflow == _installed("tensorflow")


def test_the_probe_does_not_import_tensorflow():
    code = ("import json, sys; from deepflash.backends.executor_env import probe; probe(0); "
            "print(json.dumps(['tensorflow' in sys.modules, 'keras' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=True)
    assert json.loads(out.stdout.decode().splitlines()[-1]) == [False, False]


def test_an_executor_like_the_driver_has_no_problems():
    assert problems(DRIVER, GOOD) == []


def test_an_executor_without_deepflash_tensorflow_and_keras():
    assert problems(DRIVER, BARE) == ["deepflash cannot be imported (ModuleNotFoundError: No module named 'deepflash')",
                                      "TensorFlow is not installed (the driver has 2.15.1)",
                                      "Keras is not installed (the driver has 2.15.0)"]


def test_versions_that_differ_from_the_driver():
    other = dataclasses.replace(GOOD, deepflash="0.0.9", python_version="3.10.13", tensorflow="2.14.0")
    assert problems(DRIVER, other) == ["deepflash 0.0.9 where the driver has 0.1.0",
                                       "Python 3.10 where the driver has 3.11",
                                       "TensorFlow 2.14.0 where the driver has 2.15.1"]
    # another patch release of Python is fine; an unknown version cannot be compared
    assert problems(DRIVER, dataclasses.replace(GOOD, python_version="3.11.9", keras="unknown")) == []


def test_a_framework_the_driver_lacks_is_not_asked_of_executors():
    assert problems(dataclasses.replace(DRIVER, keras=None), dataclasses.replace(GOOD, keras=None)) == []


def test_the_error_names_host_python_what_is_missing_and_the_fix():
    message = format_error(DRIVER, [(BARE, problems(DRIVER, BARE))], 2, SETTING)
    lines = message.splitlines()
    assert lines[0] == "executors cannot run deepflash's training (1 of 2 executor Python(s) checked):"
    assert lines[1] == ("- host worker-1, Python /usr/bin/python3 (3.11.7): deepflash cannot be imported "
                        "(ModuleNotFoundError: No module named 'deepflash'); TensorFlow is not installed (the "
                        "driver has 2.15.1); Keras is not installed (the driver has 2.15.0)")
    assert lines[2] == ("The driver runs Python /opt/venv/bin/python (3.11.7) with deepflash 0.1.0, "
                        "TensorFlow 2.15.1, Keras 2.15.0.")
    fix = lines[3]
    assert fix.startswith("Fix: ") and "PYSPARK_PYTHON" in fix and "spark.pyspark.python" in fix and SETTING in fix
    assert "--py-files build/dist/deepflash.zip" in fix and "%pip install deepflash" in fix
    assert "%pip install tensorflow==2.15.1 keras==2.15.0" in fix


def test_a_framework_mismatch_alone_is_not_fixed_by_shipping_deepflash():
    other = dataclasses.replace(GOOD, keras="2.14.0")
    fix = format_error(DRIVER, [(other, problems(DRIVER, other))], 1, SETTING).splitlines()[-1]
    assert "--py-files" not in fix and "%pip install tensorflow==2.15.1 keras==2.15.0" in fix


def test_the_log_summary_names_hosts_python_and_versions():
    second = dataclasses.replace(GOOD, workdir="/spark/work/app-1/1", host="worker-2")
    assert summary([GOOD, second]) == ("2 executor Python(s) on host(s) worker-1, worker-2: Python "
                                       "/opt/venv/bin/python (3.11.7) with deepflash 0.1.0, TensorFlow 2.15.1, "
                                       "Keras 2.15.0")


@pytest.mark.parametrize("text, expected", [
    (SPARK_40_BARRIER, "ModuleNotFoundError: No module named 'deepflash'"),
    (SPARK_43_BARRIER, "ModuleNotFoundError: No module named 'deepflash'"),
    (CAPTURED_UDF, "pyspark.errors.exceptions.base.PySparkRuntimeError: [PYTHON_VERSION_MISMATCH] Python in worker "
                   "has different version: 3.10 than that in driver: 3.11, PySpark cannot run with different minor "
                   "versions."),
    (CHAINED, "RuntimeError: TensorFlow cannot load here"),
    ("An error occurred while calling o123.collect.\n: org.apache.spark.SparkException: Job aborted due to stage "
     "failure: Task 0 in stage 1.0 failed 1 times\n\tat org.apache.spark.scheduler.DAGScheduler", None),
])
def test_the_worker_exception_is_found_in_spark_error_text(text, expected):
    assert worker_exception(text) == expected


def test_a_barrier_stage_that_fails_in_its_worker_reports_the_worker_exception_first(monkeypatch):
    from deepflash.backends import WorkerError, stage

    def failing_stage(spark, fn, n):  # the barrier stage's job fails with Spark's error text
        raise RuntimeError(SPARK_40_BARRIER)

    monkeypatch.setattr(stage, "run_barrier", failing_stage)
    with pytest.raises(WorkerError) as info:
        stage.run_stage(object(), lambda index: None, 2)
    assert str(info.value).startswith("ModuleNotFoundError: No module named 'deepflash' (raised in the Python worker "
                                      "of a training process of 2")
