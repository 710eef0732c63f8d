"""A session's settings without the JVM (deepflash/spark/session.py), on fake sessions: no Spark."""
from __future__ import annotations

import pytest

from deepflash.spark.session import conf, conf_int, core_site_value, default_fs, is_connect, is_local_master, kind
from helpers import ConfSession


@pytest.fixture(autouse=True)
def no_hadoop_conf(monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)


def _site(directory, value: str) -> None:
    (directory / "core-site.xml").write_text(
        f"<configuration><property><name>other</name><value>x</value></property>"
        f"<property><name>fs.defaultFS</name><value> {value} </value></property></configuration>")


def test_default_fs_order(tmp_path, monkeypatch):
    assert default_fs() == "file:///"
    assert default_fs(ConfSession()) == "file:///"
    _site(tmp_path, "hdfs://site:9000")
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert default_fs(None) == "hdfs://site:9000"
    assert default_fs(ConfSession(**{"spark.hadoop.fs.defaultFS": "hdfs://nn:8020"})) == "hdfs://nn:8020"
    hadoop = tmp_path / "hadoop"
    hadoop.mkdir()
    _site(hadoop, "hdfs://hadoop:8020")
    monkeypatch.setenv("HADOOP_CONF_DIR", str(hadoop))
    assert default_fs() == "hdfs://hadoop:8020"  # HADOOP_CONF_DIR before SPARK_CONF_DIR


def test_core_site_value_absent_or_broken(tmp_path):
    assert core_site_value(str(tmp_path / "missing.xml"), "fs.defaultFS") is None
    (tmp_path / "broken.xml").write_text("<configuration><property>")
    assert core_site_value(str(tmp_path / "broken.xml"), "fs.defaultFS") is None
    _site(tmp_path, "hdfs://a:1")
    assert core_site_value(str(tmp_path / "core-site.xml"), "fs.defaultFS") == "hdfs://a:1"
    assert core_site_value(str(tmp_path / "core-site.xml"), "absent") is None


def test_conf_and_conf_int():
    spark = ConfSession(**{"a": "3", "empty": "", "bad": "3.5"})
    assert conf(spark, "a") == "3" and conf(spark, "empty", "d") == "d" and conf(spark, "none") is None
    assert conf_int(spark, "a", 0) == 3 and conf_int(spark, "none", 7) == 7
    with pytest.raises(ValueError, match=r"Spark setting `bad` == '3.5': expected an integer"):
        conf_int(spark, "bad", 0)


def test_kind_and_master():
    assert not is_connect(ConfSession()) and kind(ConfSession()) == "classic"
    assert is_local_master(ConfSession(**{"spark.master": "local[2]"}))
    assert not is_local_master(ConfSession(**{"spark.master": "spark://h:7077"}))
    assert not is_local_master(ConfSession())
