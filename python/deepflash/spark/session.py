"""The kind of a SparkSession, and what its configuration says, on classic and Connect sessions alike."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree

CONNECT_MODULE = "pyspark.sql.connect"


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect session (a thin client: no SparkContext, no JVM)."""
    return type(spark).__module__.startswith(CONNECT_MODULE)


def kind(spark) -> str:
    """``"connect"`` or ``"classic"``, for messages and logs."""
    return "connect" if is_connect(spark) else "classic"


def conf(spark, key: str, default: str | None = None) -> str | None:
    """The session's value of ``key`` (runtime SQL settings and the cluster's static SparkConf
    alike), or ``default`` where it is unset."""
    value = spark.conf.get(key, None)
    return default if value is None or value == "" else str(value)


def conf_int(spark, key: str, default: int) -> int:
    """An integer setting; raises a ValueError naming ``key`` when it does not read as one."""
    value = conf(spark, key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Spark setting `{key}` == {value!r}: expected an integer") from None


def master(spark) -> str:
    """``spark.master`` (``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``), '' where
    the session does not say."""
    return conf(spark, "spark.master", "") or ""


def is_local_master(spark) -> bool:
    """Whether the executors run in the driver's own process (``local``, ``local[n]``)."""
    return master(spark).startswith("local")


def default_fs(spark=None) -> str:
    """Hadoop's ``fs.defaultFS``, the filesystem of a path without a scheme, read without the JVM.

    In order: the session's ``spark.hadoop.fs.defaultFS``, then ``core-site.xml`` under
    ``HADOOP_CONF_DIR`` (or ``SPARK_CONF_DIR``) on this machine, then ``file:///``.
    """
    if spark is not None:
        value = conf(spark, "spark.hadoop.fs.defaultFS")
        if value:
            return value
    for variable in ("HADOOP_CONF_DIR", "SPARK_CONF_DIR"):
        directory = os.environ.get(variable)
        if directory:
            value = core_site_value(os.path.join(directory, "core-site.xml"), "fs.defaultFS")
            if value:
                return value
    return "file:///"


def core_site_value(path: str, name: str) -> str | None:
    """A property's value in a Hadoop ``*-site.xml`` file; None when the file or the property is absent."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() == name:
            return (prop.findtext("value") or "").strip() or None
    return None


def require_classic(spark, feature: str, alternative: str) -> None:
    """Raises before any job when ``feature`` needs a classic session and ``spark`` is a Connect one.

    Example:
        >>> require_classic(spark, "`backend` == 'x'", "use backend='barrier'")
        ValueError: `backend` == 'x' needs a classic SparkSession (Spark Connect has no SparkContext): use ...
    """
    if is_connect(spark):
        raise ValueError(f"{feature} needs a classic SparkSession (Spark Connect has no SparkContext): {alternative}")
