"""Whether the executors' Python can run deepflash's training, checked before the first training job.

Without this check, an executor whose Python lacks deepflash (``PYSPARK_PYTHON`` unset, so it runs
another interpreter) fails a fit only when a rank's Python worker cannot unpickle its task, and the
cause is in the executor's log. :func:`check_executors` instead runs one cheap task per task slot:
a plain Python UDF (``useArrow=False``: no pandas or pyarrow needed) over
``spark.range(n, numPartitions=n)``, through the DataFrame API so that it works on classic and Spark
Connect sessions. Each task reports its host, its Python (executable and version), whether
``import deepflash`` works and which TensorFlow and Keras are installed. The distinct answers are
compared with the driver's, and :class:`ExecutorEnvironmentError` names the host, its Python, what
is missing or differs, and the fix.

How the probe runs where deepflash cannot be imported: :func:`probe` uses the standard library
only, imported inside its body, and travels as a copy whose globals are a fresh namespace named
``deepflash-executor-probe``, a module that does not exist, so cloudpickle ships its code by value
instead of a reference to this module.

What it imports there, decided by cost:

- deepflash, for real: it takes about a second (pandas, pyarrow and pyspark.ml, but no TensorFlow),
  and it is the only way to see an installed deepflash whose own dependencies are broken. In a Python
  worker that Spark reuses, the import also serves the training that follows.
- TensorFlow and Keras, not: ``importlib.util.find_spec`` and their distribution metadata give
  presence and version, while an import costs several seconds per Python worker. A framework that
  is installed but fails to load still fails in the rank, and
  :func:`deepflash.backends.stage.worker_exception` brings that error to the driver.

A passing answer is cached per Spark application (``spark.app.id``, readable on classic and Connect
sessions), so a search's trials and later fits do not pay for it again; a failing one is not, so
that a fix made within the session (classic: ``spark.sparkContext.addPyFile``; Connect:
``spark.addArtifacts``) counts at the next fit.
"""
from __future__ import annotations

import builtins
import json
import logging
import os
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

from deepflash.backends.stage import worker_exception
from deepflash.spark.session import conf, is_connect
from deepflash.spark.slots import count_slots

log = logging.getLogger("deepflash")

# The frameworks compared with the driver's: (distribution/import name, how messages name it).
FRAMEWORKS = (("tensorflow", "TensorFlow"), ("keras", "Keras"))
# A package found by find_spec whose distribution metadata gives no version.
UNKNOWN = "unknown"
# The module name the probe's copy claims: not importable, so cloudpickle ships it by value.
PROBE_MODULE = "deepflash-executor-probe"

# Passing answers by spark.app.id.
_CHECKED: dict[str, tuple[PythonEnvironment, ...]] = {}


class ExecutorEnvironmentError(RuntimeError):
    """An executor's Python cannot run deepflash's training: deepflash is missing there, or its
    Python, deepflash, TensorFlow or Keras version differs from the driver's. Raised before any
    write."""


@dataclass(frozen=True)
class PythonEnvironment:
    """What one Python process has: an executor's, from :func:`probe`, or the driver's.

    Args:
        host: ``socket.gethostname()``.
        python, python_version: ``sys.executable`` and its version (``3.11.7``).
        workdir: the process's working directory (one per executor on standalone and YARN, so
            that executors sharing a host stay distinct).
        deepflash: the version ``import deepflash`` found, or None when the import failed.
        deepflash_error: then, its ``Type: message``.
        tensorflow, keras: the installed versions (``unknown`` without metadata), None when absent.
    """

    host: str
    python: str
    python_version: str
    workdir: str
    deepflash: str | None
    deepflash_error: str | None = None
    tensorflow: str | None = None
    keras: str | None = None

    @classmethod
    def from_json(cls, text: str) -> PythonEnvironment:
        return cls(**json.loads(text))

    def where(self) -> str:
        """``host h, Python /usr/bin/python3 (3.11.7)``."""
        return f"host {self.host}, Python {self.python} ({self.python_version})"

    def packages(self) -> str:
        """``deepflash 0.1.0, TensorFlow 2.15.1, Keras 2.15.0``, naming what is missing."""
        parts = [f"deepflash {self.deepflash}" if self.deepflash else "no importable deepflash"]
        parts += [f"{label} {getattr(self, name)}" if getattr(self, name) else f"no {label}"
                  for name, label in FRAMEWORKS]
        return ", ".join(parts)


def probe(_row: int) -> str:
    """This Python's :class:`PythonEnvironment`, as JSON. Runs on executors that may lack deepflash:
    standard library only, imported here (see the module docstring); ship :func:`shippable` copies."""
    import importlib.metadata
    import importlib.util
    import json
    import os
    import platform
    import socket
    import sys

    # The distributions that install each name, commonest first; failing those, every installed
    # distribution's file list is searched (a few tenths of a second).
    known = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tensorflow-intel"),
             "keras": ("keras",)}

    def first_version(dists):
        for dist in dists:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def installed(name):
        try:
            if importlib.util.find_spec(name) is None:
                return None
        except (ImportError, ValueError):
            return None
        return (first_version(known[name]) or first_version(importlib.metadata.packages_distributions().get(name, []))
                or "unknown")

    found = {"host": socket.gethostname(), "python": sys.executable, "python_version": platform.python_version(),
             "workdir": os.getcwd(), "deepflash": None, "deepflash_error": None}
    try:
        import deepflash

        found["deepflash"] = getattr(deepflash, "__version__", None) or importlib.metadata.version("deepflash")
    except Exception as e:  # noqa: BLE001  (a broken install is what is being looked for)
        found["deepflash_error"] = f"{type(e).__name__}: {e}"
    found["tensorflow"], found["keras"] = installed("tensorflow"), installed("keras")
    return json.dumps(found)


def shippable(fn: Callable) -> Callable:
    """A copy of ``fn`` whose module is :data:`PROBE_MODULE`, which cannot be imported, so
    cloudpickle pickles its code by value; ``fn`` must use only the names it imports itself."""
    namespace = {"__name__": PROBE_MODULE, "__builtins__": builtins}
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__doc__, copy.__qualname__ = fn.__doc__, fn.__qualname__
    return copy


def driver_environment() -> PythonEnvironment:
    """This process's environment, by the same probe."""
    return PythonEnvironment.from_json(probe(0))


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def problems(driver: PythonEnvironment, executor: PythonEnvironment) -> list[str]:
    """What keeps ``executor`` from running the driver's training, one phrase each; empty if nothing.

    deepflash must import and match the driver's version, Python must match the driver's
    major.minor, and TensorFlow and Keras (where the driver has them) must be installed in the
    driver's version (unknown versions are not compared).

    Example:
        >>> problems(driver, executor)
        ["deepflash cannot be imported (ModuleNotFoundError: No module named 'deepflash')"]
    """
    found = []
    if executor.deepflash is None:
        found.append(f"deepflash cannot be imported ({executor.deepflash_error})")
    elif executor.deepflash != driver.deepflash:
        found.append(f"deepflash {executor.deepflash} where the driver has {driver.deepflash}")
    if _minor(executor.python_version) != _minor(driver.python_version):
        found.append(f"Python {_minor(executor.python_version)} where the driver has {_minor(driver.python_version)}")
    for name, label in FRAMEWORKS:
        want, have = getattr(driver, name), getattr(executor, name)
        if want is None:
            continue
        if have is None:
            found.append(f"{label} is not installed (the driver has {want})")
        elif UNKNOWN not in (want, have) and have != want:
            found.append(f"{label} {have} where the driver has {want}")
    return found


def fixes(driver: PythonEnvironment, python_setting: str, deepflash_missing: bool,
          frameworks_differ: bool) -> str:
    """The ways out, as one sentence."""
    ways = [f"run the executors on a Python that has deepflash and the driver's packages: set PYSPARK_PYTHON to "
            f"it before the session starts, or spark.pyspark.python with spark-submit ({python_setting})"]
    if deepflash_missing:
        ways.append("ship deepflash with `spark-submit --py-files build/dist/deepflash.zip` (`gradle bundle`)")
        ways.append("install it on the cluster (`%pip install deepflash` on Databricks)")
    if frameworks_differ:
        pins = " ".join(f"{name}=={getattr(driver, name)}" for name, _ in FRAMEWORKS
                        if getattr(driver, name) not in (None, UNKNOWN))
        ways.append(f"install the driver's versions on the cluster (`%pip install {pins}`)")
    return "Fix: " + "; or ".join(ways) + "."


def format_error(driver: PythonEnvironment, found: list[tuple[PythonEnvironment, list[str]]], checked: int,
                 python_setting: str) -> str:
    """The message of :class:`ExecutorEnvironmentError`: each failing executor Python's host,
    Python and problems, the driver's environment, and the fix."""
    lines = [f"executors cannot run deepflash's training ({len(found)} of {checked} executor Python(s) checked):"]
    lines += [f"- {env.where()}: {'; '.join(issues)}" for env, issues in found]
    lines.append(f"The driver runs Python {driver.python} ({driver.python_version}) with {driver.packages()}.")
    issues = [issue for _, found_issues in found for issue in found_issues]
    lines.append(fixes(driver, python_setting, deepflash_missing=any(i.startswith("deepflash") for i in issues),
                       frameworks_differ=any(i.startswith(label) for i in issues for _, label in FRAMEWORKS)))
    return "\n".join(lines)


def python_setting(spark) -> str:
    """Which Python this session starts on executors, as a note for the error message: the
    session's ``spark.pyspark.python``, else (classic) the driver's ``PYSPARK_PYTHON``; a Spark
    Connect server decides it from its own environment."""
    executable = conf(spark, "spark.pyspark.python")
    if executable:
        return f"this session starts `{executable}` there (spark.pyspark.python)"
    if is_connect(spark):
        return "the Spark Connect server starts the Python its own PYSPARK_PYTHON names"
    executable = os.environ.get("PYSPARK_PYTHON")
    if executable:
        return f"this session starts `{executable}` there (PYSPARK_PYTHON)"
    return "this session starts `python3` there, as PYSPARK_PYTHON was unset"


def _task_count(spark, at_least: int) -> int:
    """One task per task slot (:func:`~deepflash.spark.slots.count_slots`), at least ``at_least``."""
    return max(count_slots(spark, at_least=max(at_least, 1)).total, at_least, 1)


def _run_probe(spark, tasks: int) -> list[PythonEnvironment]:
    """Runs :func:`probe` in ``tasks`` tasks; returns the distinct answers."""
    from pyspark.sql import functions as F

    udf = F.udf(shippable(probe), "string", useArrow=False)
    rows = spark.range(tasks, numPartitions=tasks).select(udf("id").alias("env")).collect()
    return [PythonEnvironment.from_json(text) for text in sorted({r["env"] for r in rows})]


def summary(envs: tuple[PythonEnvironment, ...] | list[PythonEnvironment]) -> str:
    """``2 executor Python(s) on host(s) a: Python /p (3.11.7) with deepflash 0.1.0, TensorFlow ...``."""
    kinds = sorted({f"Python {env.python} ({env.python_version}) with {env.packages()}" for env in envs})
    return (f"{len(envs)} executor Python(s) on host(s) {', '.join(sorted({env.host for env in envs}))}: "
            + "; ".join(kinds))


def check_executors(spark, at_least: int = 1) -> tuple[PythonEnvironment, ...]:
    """Checks, once per Spark application, that every executor's Python can run deepflash's training.

    Runs one probe task per task slot (at least ``at_least``), compares the distinct answers with the
    driver's environment and logs them; later calls in the same application return the cached
    answer without a job.

    Args:
        spark: the session of the data (``dataset.sparkSession``).
        at_least: tasks to run at the least, e.g. the fit's number of processes.

    Returns:
        The distinct executor environments.

    Raises:
        ExecutorEnvironmentError: an executor lacks deepflash, TensorFlow or Keras, has other
            versions than the driver, or the probe itself failed there.

    Example:
        >>> envs = check_executors(df.sparkSession)
        >>> sorted({e.host for e in envs})
    """
    app = spark.conf.get("spark.app.id")
    if app in _CHECKED:
        return _CHECKED[app]
    started = time.time()
    driver = driver_environment()
    tasks = _task_count(spark, at_least)
    try:
        envs = _run_probe(spark, tasks)
    except Exception as e:  # noqa: BLE001  (the executor's Python could not even run the probe)
        text = str(e).strip()
        cause = worker_exception(text) or (text.splitlines()[0] if text else type(e).__name__)
        raise ExecutorEnvironmentError(
            f"executors cannot run deepflash's training: the check of their Python failed on an executor: {cause}\n"
            f"The driver runs Python {driver.python} ({driver.python_version}) with {driver.packages()}.\n"
            + fixes(driver, python_setting(spark), deepflash_missing="deepflash" in cause,
                    frameworks_differ=False)) from e
    found = [(env, issues) for env in envs if (issues := problems(driver, env))]
    if found:
        raise ExecutorEnvironmentError(format_error(driver, found, len(envs), python_setting(spark)))
    log.info("executors checked in %.1fs (%d tasks): %s", time.time() - started, tasks, summary(envs))
    _CHECKED[app] = tuple(envs)
    return _CHECKED[app]

