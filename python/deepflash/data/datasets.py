"""Datasets as Spark DataFrames: images with a ``features`` Vector (scaled to [0, 1]) and a double ``label``,
and a generated series (:func:`sine_wave`).

Nothing here downloads: digits ship inside scikit-learn, Fashion-MNIST comes from Debian's
``dataset-fashion-mnist`` package, and MNIST-format IDX files are read from wherever you have them.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
from pyspark.sql import DataFrame, SparkSession

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
SPLITS = {"train": "train", "test": "t10k"}


def from_numpy(spark: SparkSession, x: np.ndarray, y: np.ndarray, num_partitions: int | None = None) -> DataFrame:
    """A DataFrame (features Vector, label double) from a feature matrix and a label vector.

    Rows go through Arrow as arrays (whatever ``spark.sql.execution.arrow.pyspark.enabled`` says)
    and become Vectors in the JVM, which is much faster than building Python ``DenseVector`` rows.
    """
    import pyarrow as pa
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"expected x of shape (rows, features) and y of shape (rows,), found {x.shape} and "
                         f"{np.shape(y)}")
    rows, dim = x.shape
    table = pa.table({
        "x": pa.ListArray.from_arrays(pa.array(np.arange(0, rows * dim + 1, dim, dtype=np.int32)),
                                      pa.array(x.ravel())),
        "label": pa.array(np.asarray(y, dtype=np.float64)),
    })
    df = spark.createDataFrame(table)
    if num_partitions:
        df = df.repartition(num_partitions)
    return df.select(array_to_vector(F.col("x")).alias("features"), F.col("label"))


def load_digits(spark: SparkSession) -> DataFrame:
    """scikit-learn's 1,797 8x8 handwritten digits (64 features, 10 classes)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    return from_numpy(spark, bunch.data / 16.0, bunch.target)


def read_idx(path: str) -> np.ndarray:
    """One IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[:2] != b"\x00\x00":
            raise ValueError(f"{path} is not an IDX file (bad magic number {magic!r})")
        dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(magic[2])
        if dtype is None:
            raise ValueError(f"{path}: unknown IDX data type 0x{magic[2]:02x}")
        dims = struct.unpack(">" + "I" * magic[3], f.read(4 * magic[3]))
        data = np.frombuffer(f.read(), dtype=dtype)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {dims}, found {data.size} values")
    return data.reshape(dims)


def _idx_paths(directory: str, split: str) -> tuple[str, str]:
    if split not in SPLITS:
        raise ValueError(f"split == {split!r}, must be one of: {', '.join(SPLITS)}")
    prefix = SPLITS[split]
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        names = [f"{prefix}-{kind}.gz", f"{prefix}-{kind}"]
        path = next((os.path.join(directory, n) for n in names if os.path.exists(os.path.join(directory, n))), None)
        if path is None:
            raise FileNotFoundError(f"no {names[0]} (or {names[1]}) in {directory}")
        found.append(path)
    return found[0], found[1]


def load_idx_numpy(directory: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from MNIST-format IDX files: x flattened to (rows, pixels) and scaled to [0, 1]."""
    images, labels = _idx_paths(directory, split)
    x = read_idx(images)
    y = read_idx(labels)
    return x.reshape(len(x), -1).astype(np.float32) / 255.0, y.astype(np.float64)


def load_idx(spark: SparkSession, directory: str, split: str = "train") -> DataFrame:
    """MNIST-format IDX files (``train-images-idx3-ubyte.gz`` ...) in ``directory`` as a DataFrame."""
    x, y = load_idx_numpy(directory, split)
    return from_numpy(spark, x, y, num_partitions=max(1, len(x) // 10_000))


def load_fashion_mnist(spark: SparkSession, split: str = "train", directory: str = FASHION_MNIST_DIR) -> DataFrame:
    """Fashion-MNIST (60k train / 10k test, 784 pixels, 10 classes) from Debian's package."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Fashion-MNIST not found in {directory}; install the Debian package "
                                "`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist) or pass directory=")
    return load_idx(spark, directory, split)


def sine_wave(spark: SparkSession, n: int, period: float, noise: float = 0.0, seed: int | None = None) -> DataFrame:
    """A sine wave of ``n`` steps, generated in Spark: ``t`` (long, 0..n-1) and ``value`` (double).

    ``value = sin(2 pi t / period) + noise * N(0, 1)``. The noise is Spark's ``randn(seed)`` over a
    partitioning fixed by ``n`` (one partition per million steps), so a seed gives the same series
    on any cluster; ``seed=None`` draws a fresh one.

    Args:
        n: steps, >= 1.
        period: steps per cycle, > 0.
        noise: standard deviation of the added Gaussian noise, >= 0.
        seed: seeds the noise.

    Example:
        >>> rows = LookBackWindow(inputCol="value", lookBack=10, orderBy="t").transform(sine_wave(spark, 1000, 50))
    """
    from pyspark.sql import functions as F

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` == {n!r}, must be an integer >= 1")
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
        raise ValueError(f"`period` == {period!r}, must be a number > 0")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"`noise` == {noise!r}, must be a number >= 0")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` == {seed!r}, must be an integer or None")
    steps = spark.range(0, n, 1, numPartitions=max(1, -(-n // 1_000_000)))
    value = F.sin(F.col("id") * F.lit(2 * np.pi / float(period)))
    if noise > 0:
        value = value + F.lit(float(noise)) * F.randn(seed)
    return steps.select(F.col("id").alias("t"), value.alias("value"))
