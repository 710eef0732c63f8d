"""One SparkSession (local[2]) for the whole test session; Python workers use this interpreter."""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import tempfile
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# MLflow runs of the tests go to a throwaway local store, never to ./mlflow.db.
MLFLOW_DIR = tempfile.mkdtemp(prefix="deepflash-test-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{MLFLOW_DIR}/mlflow.db"
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONNECT_PORT = _free_port()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The suite's classic session. It also serves Spark Connect on ``CONNECT_PORT`` (Spark's
    Connect plugin), so that the ``connect`` fixture's client shares its executors."""
    from pyspark.sql import SparkSession

    local_dir = tmp_path_factory.mktemp("spark-local")
    session = (SparkSession.builder.master("local[2]").appName("deepflash-tests")
               .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
               .config("spark.connect.grpc.binding.address", "127.0.0.1")
               .config("spark.connect.grpc.binding.port", str(CONNECT_PORT))
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.local.dir", str(local_dir))
               .config("spark.driver.memory", "2g")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    logging.getLogger("deepflash").setLevel(logging.INFO)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect(spark):
    """A Spark Connect client of the suite's session (no SparkContext, no JVM in this client)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    client = ConnectSession.builder.remote(f"sc://127.0.0.1:{CONNECT_PORT}").getOrCreate()
    yield client
    client.stop()


@pytest.fixture(params=["classic", "connect"])
def any_spark(request):
    """A classic session, then a Spark Connect one: a test that takes it runs on both kinds."""
    return request.getfixturevalue("spark" if request.param == "classic" else "connect")


@pytest.fixture(scope="session")
def digits(spark):
    """(train, test) DataFrames of scikit-learn's digits, split 80/20 by a fixed seed, cached."""
    from deepflash.data.datasets import load_digits

    train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
    return train.cache(), test.cache()


@pytest.fixture(scope="session")
def connect_digits(connect):
    """The ``digits`` split, as DataFrames of the Connect session."""
    from deepflash.data.datasets import load_digits

    train, test = load_digits(connect).randomSplit([0.8, 0.2], seed=7)
    return train.cache(), test.cache()


@pytest.fixture()
def any_digits(any_spark, request):
    """``digits`` on the session ``any_spark`` gives."""
    from deepflash.spark.session import is_connect

    return request.getfixturevalue("connect_digits" if is_connect(any_spark) else "digits")



# Stacks a profile may lack: the modern profile (Keras 3, numpy 2) installs neither.
OPTIONAL_STACKS = {"horovod": "horovod", "petastorm": "petastorm"}


# Set by `gradle test` for its second pass (the modern profile after the classic one): slow tests
# marked `one_profile` ran in the first pass, and what differs between the profiles in them is
# covered in this pass by other tests (see each test's marker reason).
SECOND_PROFILE_PASS = os.environ.get("DEEPFLASH_SECOND_PROFILE_PASS") == "1"


def pytest_collection_modifyitems(config, items):
    """Skips tests marked ``horovod`` or ``petastorm`` where that package is not installed, and
    those marked ``one_profile`` in the second profile pass of ``gradle test``."""
    if SECOND_PROFILE_PASS:
        for item in items:
            marker = item.get_closest_marker("one_profile")
            if marker is not None:
                reason = marker.kwargs.get("reason") or marker.args[0]
                item.add_marker(pytest.mark.skip(reason=f"ran on the classic profile; here {reason}"))
    for marker, module in OPTIONAL_STACKS.items():
        if importlib.util.find_spec(module) is not None:
            continue
        skip = pytest.mark.skip(reason=f"needs {module}, which this profile does not install")
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deepflash_logger_kept():
    """A job run in-process (``jobs.main``) sets the ``deepflash`` logger up for a console: its own
    handler, no propagation, so later tests' ``caplog`` would see nothing. Put that back."""
    log = logging.getLogger("deepflash")
    handlers, propagate = log.handlers[:], log.propagate
    yield
    log.handlers[:], log.propagate = handlers, propagate
