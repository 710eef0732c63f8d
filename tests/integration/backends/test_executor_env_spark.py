"""The executor check on Spark: once per session, and a fit whose executors run a Python without
deepflash fails before any write, naming the host, that Python and what it lacks."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from deepflash import KerasEstimator
from deepflash.backends import executor_env
from helpers import job_group

LAYERS = [{"type": "dense", "units": 8, "activation": "relu"}]


def _probe_jobs(spark, group: str) -> list[int]:
    """The jobs of ``group`` that ran the executor probe (their stages are named for its call site)."""
    tracker = spark.sparkContext.statusTracker()
    return [job for job in tracker.getJobIdsForGroup(group)
            if any("executor_env.py" in (tracker.getStageInfo(s).name or "") for s in tracker.getJobInfo(job).stageIds)]


def _in_group(spark, fn) -> str:
    with job_group(spark, "executor-check") as group:
        fn()
    return group


def test_the_check_runs_once_per_session_and_only_where_training_runs_on_executors(spark, tmp_path, monkeypatch,
                                                                                   caplog):
    train = spark.createDataFrame([([i / 40, 1 - i / 40], float(i % 2)) for i in range(40)],
                                  "features array<double>, label double")
    monkeypatch.setattr(executor_env, "_CHECKED", {})
    est = KerasEstimator(backend="barrier", numProc=2, layers=LAYERS, storePath=str(tmp_path / "store"))
    with caplog.at_level(logging.INFO, logger="deepflash"):
        first = _in_group(spark, lambda: est.plan(train))
    assert len(_probe_jobs(spark, first)) == 1
    checked = [r.getMessage() for r in caplog.records if r.getMessage().startswith("executors checked")]
    assert len(checked) == 1 and f"Python {sys.executable} (" in checked[0] and "deepflash 0.1.0" in checked[0]
    # a later fit's plan and a search's trial plan (numProc=1) reuse the answer
    again = _in_group(spark, lambda: (est.plan(train), est.plan(train, numProc=1)))
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(again) and _probe_jobs(spark, again) == []
    # backend="local" trains in the driver: nothing to check on the executors
    monkeypatch.setattr(executor_env, "_CHECKED", {})
    local = _in_group(spark, lambda: est.copy({est.backend: "local", est.numProc: 1}).plan(train))
    assert _probe_jobs(spark, local) == []


SCRIPT = """
import json, os, sys, time
from pyspark.sql import SparkSession

store, bare = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.pyspark.python", bare).getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
from deepflash import KerasEstimator
from deepflash.backends import WorkerError, get_backend
from deepflash.data.datasets import load_digits

train = load_digits(spark)
out = {}
started = time.time()
try:
    KerasEstimator(backend="barrier", numProc=2, epochs=1, storePath=store).fit(train)
except Exception as e:
    out["fit"] = {"type": type(e).__name__, "message": str(e)}
out["seconds"] = time.time() - started
out["store_exists"] = os.path.exists(store)
try:  # the ranks themselves: their workers cannot unpickle the task
    get_backend("barrier", 2).run(spark, os.getpid, ())
except WorkerError as e:
    out["worker_error"] = str(e)
print("RESULT " + json.dumps(out))
spark.stop()
"""


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def _python_without_deepflash(cwd) -> str:
    """This Python's base interpreter (the one its venv was made from), if it lacks deepflash."""
    bare = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not os.path.exists(bare):
        pytest.skip(f"needs this venv's base interpreter, {bare}")
    lacks = subprocess.run([bare, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('deepflash') "
                                        "is not None)"], env=_clean_env(), cwd=cwd, timeout=60).returncode == 0
    if not lacks:
        pytest.skip(f"{bare} has deepflash")
    return bare


@pytest.mark.slow
def test_a_fit_on_executors_without_deepflash_fails_before_any_write(tmp_path):
    bare = _python_without_deepflash(tmp_path)
    store = tmp_path / "store"
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(store), bare], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300,
                          env=_clean_env(PYSPARK_PYTHON=bare, PYSPARK_DRIVER_PYTHON=sys.executable))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    fit = out["fit"]
    assert fit["type"] == "ExecutorEnvironmentError", fit
    first, executor = fit["message"].splitlines()[:2]
    assert first.startswith("executors cannot run deepflash's training"), fit
    assert executor.startswith(f"- host {socket.gethostname()}, Python {bare} ("), fit
    assert "deepflash cannot be imported (ModuleNotFoundError: No module named 'deepflash')" in executor, fit
    assert "PYSPARK_PYTHON" in fit["message"] and "--py-files build/dist/deepflash.zip" in fit["message"], fit
    assert not out["store_exists"], "the fit wrote to the store before failing"
    assert out["seconds"] < 60, out
    assert out["worker_error"].startswith("ModuleNotFoundError: No module named 'deepflash'"), out
