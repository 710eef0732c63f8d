"""What a job's console shows: the ``deepflash`` logger's timestamped lines (:func:`setup_console`),
one of them per phase with its seconds (:func:`phase`), and none of Spark's start-up INFO lines.

The driver JVM logs at WARN through :data:`LOG4J2_PROPERTIES`: ``gradle run`` and ``gradle bench``
point spark-submit at it, and a job that starts its JVM itself (``deepflash train``) passes it in
``spark.driver.extraJavaOptions`` (:func:`driver_console_conf`). A log4j2 configuration of the
user's own always wins.

Example:
    with phase("evaluated the test split"):
        report = evaluate(model, test_df, estimator)
    # 12:07:58 deepflash evaluated the test split in 3.2s
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger("deepflash")

#: The log4j2 configuration of a job's driver JVM: the root logger at WARN, on stderr.
LOG4J2_PROPERTIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties")

JAVA_OPTIONS = "spark.driver.extraJavaOptions"
PROGRESS = "spark.ui.showConsoleProgress"
# A JVM option or variable naming a log4j2 configuration (log4j2 still reads the log4j 1 name).
_LOG4J_SETTINGS = ("log4j2.configurationFile", "log4j.configurationFile")
# Where a user's options for the driver JVM may be: the launcher's, the JVM's own, pyspark's.
_OPTION_VARIABLES = ("SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS",
                     "PYSPARK_SUBMIT_ARGS")
# The configuration files that log4j2 finds on the classpath, which Spark's conf dir is on.
_LOG4J_FILES = ("log4j2.properties", "log4j2.xml", "log4j2.json", "log4j2.jsn", "log4j2.yaml", "log4j2.yml")


def setup_console() -> None:
    """Sets a job's console up: the ``deepflash`` logger's INFO lines on stderr as ``12:07:58 deepflash
    <message>``, and no MLflow chatter that a ``deepflash`` line already says (the input example's
    validation, the artifact download bars, drawn with carriage returns that a log file keeps)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def phase(done: str, ok: Callable[[], bool] | None = None) -> Iterator[None]:
    """Logs ``"<done> in X.Xs"`` under the ``deepflash`` logger when the block ends, unless it
    raised or ``ok`` says it failed.

    Args:
        done: what the block did, in the past tense, e.g. ``"saved the model"``.
        ok: asked when the block ends: False for a block that failed without raising (an MLflow
            tracker that turned itself off), whose warning is then the block's only line.

    Example:
        with phase("logged the model to MLflow", ok=lambda: tracker.failure is None):
            tracker.log_pipeline_model(model)
    """
    started = time.perf_counter()
    yield
    if ok is None or ok():
        log.info("%s in %.1fs", done, time.perf_counter() - started)


def spark_conf_dir(env: Mapping[str, str]) -> str:
    """The directory Spark's launcher puts on the driver's classpath: ``SPARK_CONF_DIR``, else
    ``$SPARK_HOME/conf``, else the ``conf`` directory of the installed pyspark."""
    if env.get("SPARK_CONF_DIR"):
        return env["SPARK_CONF_DIR"]
    if env.get("SPARK_HOME"):
        return os.path.join(env["SPARK_HOME"], "conf")
    import pyspark

    return os.path.join(os.path.dirname(os.path.abspath(pyspark.__file__)), "conf")


def _defaults_set(conf_dir: str, key: str) -> bool:
    """The ``spark-defaults.conf`` of ``conf_dir`` sets ``key`` (which a ``--conf`` would replace)."""
    try:
        with open(os.path.join(conf_dir, "spark-defaults.conf")) as f:
            return any(line.split(None, 1)[:1] == [key] for line in f)
    except OSError:
        return False


def own_log_config(conf: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    """Where the user sets the driver JVM's log4j2 configuration or Java options, or None.

    Args:
        conf: the Spark conf the job's session is built with (the config's ``spark.conf``).
        env: the environment the driver JVM starts in.
    """
    if JAVA_OPTIONS in conf:
        return f"spark.conf sets {JAVA_OPTIONS}"
    if env.get("LOG4J_CONFIGURATION_FILE"):
        return "LOG4J_CONFIGURATION_FILE is set"
    for name in _OPTION_VARIABLES:
        value = env.get(name, "")
        if any(setting in value for setting in _LOG4J_SETTINGS):
            return f"{name} names a log4j2 configuration"
        if name == "PYSPARK_SUBMIT_ARGS" and ("--driver-java-options" in value or JAVA_OPTIONS in value):
            return f"{name} sets the driver's Java options"
    conf_dir = spark_conf_dir(env)
    for name in _LOG4J_FILES:
        if os.path.isfile(os.path.join(conf_dir, name)):
            return f"{os.path.join(conf_dir, name)} exists"
    if _defaults_set(conf_dir, JAVA_OPTIONS):
        return f"{os.path.join(conf_dir, 'spark-defaults.conf')} sets {JAVA_OPTIONS}"
    return None


def driver_console_conf(conf: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Spark conf that gives a driver JVM this process starts the console of a spark-submit job:
    its log at WARN, without the start-up INFO lines (``spark.driver.extraJavaOptions`` naming
    :data:`LOG4J2_PROPERTIES`, unless the user configures that JVM's log or options themselves:
    :func:`own_log_config`), and no stage progress bars (``spark.ui.showConsoleProgress``, which
    pyspark turns on for a JVM it starts, draws them over the job's lines), unless the user sets it.

    Only for a JVM that is not started yet: spark-submit starts its own before Python runs.

    Args:
        conf: the Spark conf the session is built with.
        env: the environment the JVM starts in (default: this process's).

    Example:
        >>> driver_console_conf({})
        {'spark.driver.extraJavaOptions': '-Dlog4j2.configurationFile=/.../deepflash/jobs/log4j2.properties',
         'spark.ui.showConsoleProgress': 'false'}
    """
    env = os.environ if env is None else env
    out = {}
    if own_log_config(conf, env) is None:
        option = f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}"
        # Spark splits the options at white space outside double quotes.
        out[JAVA_OPTIONS] = f'"{option}"' if any(c.isspace() for c in option) else option
    if PROGRESS not in conf and not _defaults_set(spark_conf_dir(env), PROGRESS):
        out[PROGRESS] = "false"
    return out
