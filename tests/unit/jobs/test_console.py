"""``deepflash.jobs.console``: the timed phase lines, and a driver JVM started by a job logging at WARN
(without Spark's start-up INFO lines) unless the user configures its log."""
from __future__ import annotations

import logging
import re

import pyspark
import pytest

from deepflash.jobs import console, sources

OPTION = f"-Dlog4j2.configurationFile={console.LOG4J2_PROPERTIES}"
QUIET = {console.JAVA_OPTIONS: OPTION, console.PROGRESS: "false"}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """An environment without a log4j2 setting of the user's, whose Spark conf dir is empty."""
    for name in ("SPARK_HOME", "LOG4J_CONFIGURATION_FILE", *console._OPTION_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf_dir))
    return {"SPARK_CONF_DIR": str(conf_dir)}


def test_a_phase_logs_what_it_did_and_its_seconds(caplog):
    with caplog.at_level(logging.INFO, logger="deepflash"):
        with console.phase("evaluated the test split"):
            pass
        with pytest.raises(ValueError), console.phase("saved the model"):
            raise ValueError("disk full")
        with console.phase("logged the model to MLflow", ok=lambda: False):
            pass
    assert [r.getMessage() for r in caplog.records] == ["evaluated the test split in 0.0s"]


def test_the_console_line_is_time_deepflash_message(capsys, monkeypatch):
    mlflow_pyfunc = logging.getLogger("mlflow.pyfunc")
    level = mlflow_pyfunc.level
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    try:
        console.setup_console()  # (the suite's autouse fixture puts the deepflash logger back)
        with console.phase("drew the plots"):
            pass
        assert re.fullmatch(r"\d\d:\d\d:\d\d deepflash drew the plots in 0\.0s\n", capsys.readouterr().err)
        assert not mlflow_pyfunc.isEnabledFor(logging.INFO)
    finally:
        mlflow_pyfunc.setLevel(level)


def test_the_shipped_log4j2_file_sets_the_root_logger_to_warn():
    lines = open(console.LOG4J2_PROPERTIES).read().splitlines()
    assert "rootLogger.level = warn" in lines and "appender.console.target = SYSTEM_ERR" in lines


def test_a_driver_jvm_the_job_starts_logs_at_warn_without_progress_bars(env, monkeypatch):
    assert console.driver_console_conf({}, env) == QUIET
    monkeypatch.setattr(console, "LOG4J2_PROPERTIES", "/opt/my venv/log4j2.properties")
    # Spark splits the options at white space outside double quotes.
    assert console.driver_console_conf({}, env)[console.JAVA_OPTIONS] == \
        '"-Dlog4j2.configurationFile=/opt/my venv/log4j2.properties"'


@pytest.mark.parametrize("setting", [
    {"conf": {console.JAVA_OPTIONS: "-Xss4m"}},
    {"env": {"LOG4J_CONFIGURATION_FILE": "/etc/log4j2.xml"}},
    {"env": {"SPARK_SUBMIT_OPTS": "-Dlog4j2.configurationFile=/etc/log4j2.xml"}},
    {"env": {"JAVA_TOOL_OPTIONS": "-Dlog4j.configurationFile=/etc/log4j2.xml"}},
    {"env": {"PYSPARK_SUBMIT_ARGS": "--driver-java-options -Xss4m pyspark-shell"}},
    {"file": ("log4j2.properties", "rootLogger.level = info\n")},
    {"file": ("log4j2.xml", "<Configuration/>\n")},
    {"file": ("spark-defaults.conf", "spark.master local[4]\nspark.driver.extraJavaOptions -Xss4m\n")},
], ids=["spark.conf", "LOG4J_CONFIGURATION_FILE", "SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "PYSPARK_SUBMIT_ARGS",
        "conf-dir-properties", "conf-dir-xml", "spark-defaults"])
def test_the_users_own_log_configuration_wins(env, setting):
    if "file" in setting:
        name, text = setting["file"]
        with open(f"{env['SPARK_CONF_DIR']}/{name}", "w") as f:
            f.write(text)
    conf = setting.get("conf", {})
    assert console.own_log_config(conf, {**env, **setting.get("env", {})}) is not None
    assert console.driver_console_conf(conf, {**env, **setting.get("env", {})}) == {console.PROGRESS: "false"}


def test_the_users_progress_bar_setting_wins(env):
    assert console.driver_console_conf({console.PROGRESS: "true"}, env) == {console.JAVA_OPTIONS: OPTION}
    with open(f"{env['SPARK_CONF_DIR']}/spark-defaults.conf", "w") as f:
        f.write("spark.ui.showConsoleProgress true\n")
    assert console.driver_console_conf({}, env) == {console.JAVA_OPTIONS: OPTION}


class _Builder:
    """SparkSession.builder's calls, recorded; getOrCreate returns a stand-in classic session."""

    def __init__(self):
        self.calls = []

    def appName(self, name):
        return self

    def master(self, master):
        self.calls.append(("master", master))
        return self

    def config(self, key, value):
        self.calls.append(("config", key, value))
        return self

    def getOrCreate(self):
        context = type("SparkContext", (), {"setLogLevel": lambda self, level: None})()
        return type("SparkSession", (), {"__module__": "pyspark.sql.session", "sparkContext": context})()


@pytest.fixture()
def builder(monkeypatch, env):
    """A session builder that starts no JVM, in a process that no spark-submit started."""
    from pyspark.sql import SparkSession

    recorded = _Builder()
    monkeypatch.setattr(SparkSession, "builder", recorded)
    monkeypatch.setattr(pyspark, "SparkConf", lambda: type("SparkConf", (), {"contains": lambda self, k: False})())
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    return recorded


def test_spark_session_passes_the_log4j2_file_to_the_jvm_it_starts(builder):
    sources.spark_session({"spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4}}})
    assert builder.calls == [("master", "local[2]"), *(("config", k, v) for k, v in QUIET.items()),
                             ("config", "spark.sql.shuffle.partitions", "4")]


def test_spark_session_keeps_the_users_java_options(builder):
    sources.spark_session({"spark": {"conf": {console.JAVA_OPTIONS: "-Dlog4j2.configurationFile=/etc/mine.xml"}}})
    assert builder.calls == [("config", console.PROGRESS, "false"),
                             ("config", console.JAVA_OPTIONS, "-Dlog4j2.configurationFile=/etc/mine.xml")]


def test_spark_session_adds_nothing_to_a_jvm_spark_submit_started(builder, monkeypatch):
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    sources.spark_session({"spark": {"master": "local[2]"}})
    assert builder.calls == []
