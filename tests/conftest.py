"""One SparkSession (local[2]) for the whole test session; Python workers use this interpreter."""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No warm spares of barrier ranks (deepflash.backends.rank_launch) unless a test asks for them: one
# test after another trains on other settings, so a spare would mostly import TensorFlow for
# nothing on the suite's 2 cores. Their own tests turn them on.
os.environ.setdefault("DEEPFLASH_WARM_RANKS", "0")
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# MLflow runs of the tests go to a throwaway local store, never to ./mlflow.db.
MLFLOW_DIR = tempfile.mkdtemp(prefix="deepflash-test-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{MLFLOW_DIR}/mlflow.db"
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)


# `gradle test` runs the tests marked `connect` a second time with DEEPFLASH_TEST_SPARK=connect:
# then `spark` is a Spark Connect session (a local Connect server, `builder.remote("local[2]")`).
# pyspark switches a whole process to Connect once it starts a remote session, so the two kinds of
# session never share a process, as they never do on a user's cluster.
TEST_SPARK = os.environ.get("DEEPFLASH_TEST_SPARK", "classic")
CONNECT = TEST_SPARK == "connect"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The suite's one session: classic local[2], or in the connect pass a Spark Connect client of
    the local Connect server that ``builder.remote("local[2]")`` starts in this process (on
    pyspark's port 15002, so connect passes run one at a time)."""
    from pyspark.sql import SparkSession

    local_dir = tmp_path_factory.mktemp("spark-local")
    builder = SparkSession.builder.remote("local[2]") if CONNECT else SparkSession.builder.master("local[2]")
    session = (builder.appName("deepflash-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.local.dir", str(local_dir))
               .config("spark.driver.memory", "2g")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    if not CONNECT:
        session.sparkContext.setLogLevel("ERROR")
    logging.getLogger("deepflash").setLevel(logging.INFO)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def digits(spark):
    """(train, test) DataFrames of scikit-learn's digits, split 80/20 by a fixed seed, cached."""
    from deepflash.data.datasets import load_digits

    train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
    return train.cache(), test.cache()



# Stacks a profile may lack: the modern profile (Keras 3, numpy 2) installs neither.
OPTIONAL_STACKS = {"horovod": "horovod", "petastorm": "petastorm"}


# `gradle test` runs the suite on both profiles, and sets DEEPFLASH_PROFILE_PASS to the pass's
# profile. A test of whole features (tests/integration, tests/docs, tests/cluster) runs in one pass:
# the classic one unless marked `one_profile(profile="modern")`. Those marked `both_profiles` run in
# both, because what they check differs between Keras 2 and Keras 3 (saving, layers, training on
# each backend). Unit tests run in both passes. Outside `gradle test` (the variable unset, as in
# `gradle test -Pargs=...` or a bare pytest) every test runs.
PROFILE_PASS = os.environ.get("DEEPFLASH_PROFILE_PASS", "")
WHOLE_FEATURE_DIRS = ("integration", "docs", "cluster")


def _pass_of(item) -> str | None:
    """The one profile pass that runs ``item``, or None where every pass runs it."""
    marker = item.get_closest_marker("one_profile")
    if marker is not None:
        return marker.kwargs.get("profile", "classic")
    if item.get_closest_marker("both_profiles") is not None:
        return None
    parts = item.path.relative_to(item.config.rootpath).parts
    if len(parts) > 1 and parts[0] == "tests" and parts[1] in WHOLE_FEATURE_DIRS:
        return "classic"
    return None


def pytest_collection_modifyitems(config, items):
    """Skips tests marked ``horovod`` or ``petastorm`` where that package is not installed, those
    another profile pass runs (see PROFILE_PASS), and in the connect pass every test not marked
    ``connect``."""
    if CONNECT:
        skip = pytest.mark.skip(reason="the connect pass runs only the tests marked `connect`")
        for item in items:
            if item.get_closest_marker("connect") is None:
                item.add_marker(skip)
    elif PROFILE_PASS:
        for item in items:
            profile = _pass_of(item)
            if profile is not None and profile != PROFILE_PASS:
                marker = item.get_closest_marker("one_profile")
                why = f": {marker.kwargs.get('reason') or marker.args[0]}" if marker is not None else ""
                item.add_marker(pytest.mark.skip(reason=f"runs in the {profile} pass of `gradle test`{why}"))
    for marker, module in OPTIONAL_STACKS.items():
        if importlib.util.find_spec(module) is not None:
            continue
        skip = pytest.mark.skip(reason=f"needs {module}, which this profile does not install")
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_shard_kept():
    """Every test reads its shards itself: a reader test's counts do not depend on an earlier test
    that read the same files (the shard cache's own tests fill it)."""
    from deepflash.data.readers.cache import SHARDS

    SHARDS.clear()


@pytest.fixture(autouse=True)
def _deepflash_logger_kept():
    """A job run in-process (``jobs.main``) sets the ``deepflash`` logger up for a console: its own
    handler, no propagation, so later tests' ``caplog`` would see nothing. Put that back."""
    log = logging.getLogger("deepflash")
    handlers, propagate = log.handlers[:], log.propagate
    yield
    log.handlers[:], log.propagate = handlers, propagate
