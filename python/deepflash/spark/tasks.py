"""Python functions as Spark tasks, through the DataFrame API (``mapInArrow``), which classic and
Connect sessions both have.

:func:`run_tasks` runs ``fn(item)`` for each item, one task each; :func:`run_barrier` runs
``fn(index)`` as one barrier stage of ``n`` tasks, which start together and learn their peers from
``BarrierTaskContext``. The function and its items travel in the task's closure (Spark ships a
large closure as a broadcast on a classic session, inside the plan on a Connect one); each task's
result comes back cloudpickled in a binary column.

A task that raises fails its Spark job: the caller gets Spark's error, which holds the Python
traceback (classic: ``PythonException`` inside a ``Py4JJavaError``; Connect: ``PythonException``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

RESULT_SCHEMA = "task long, payload binary"


class _Body:
    """The ``mapInArrow`` function: the task's index (the one row of its ``spark.range``
    partition) -> ``(index, cloudpickle(fn(index)))``. A class, so that it pickles by value with
    only what it holds."""

    def __init__(self, fn: Callable[[int], Any]):
        self.fn = fn

    def __call__(self, batches):
        import cloudpickle
        import pyarrow as pa

        for batch in batches:
            for index in batch.column(0).to_pylist():
                payload = cloudpickle.dumps(self.fn(index))
                yield pa.RecordBatch.from_arrays([pa.array([index], pa.int64()), pa.array([payload], pa.binary())],
                                                 names=["task", "payload"])


class _Item:
    """``fn(items[index])``: one task per item."""

    def __init__(self, fn: Callable[[Any], Any], items: list):
        self.fn, self.items = fn, items

    def __call__(self, index: int):
        return self.fn(self.items[index])


def _collect(spark, fn: Callable[[int], Any], n: int, barrier: bool, profile=None) -> list[Any]:
    import cloudpickle

    frame = spark.range(0, n, 1, numPartitions=n).mapInArrow(_Body(fn), RESULT_SCHEMA, barrier=barrier,
                                                             profile=profile)
    if barrier:
        # Spark never retries a failed barrier *result* stage; a barrier stage that feeds a shuffle
        # is retried whole (up to spark.stage.maxConsecutiveAttempts) when a task is lost.
        frame = frame.repartition(1)
    rows = frame.collect()
    return [cloudpickle.loads(row.payload) for row in sorted(rows, key=lambda row: row["task"])]


def run_tasks(spark, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, each call one task of one Spark job; results in order.

    Example:
        >>> run_tasks(spark, lambda x: x * x, [1, 2, 3])
        [1, 4, 9]
    """
    items = list(items)
    if not items:
        return []
    return _collect(spark, _Item(fn, items), len(items), barrier=False)


def run_barrier(spark, fn: Callable[[int], Any], n: int, profile=None) -> list[Any]:
    """``fn(index)`` for ``index`` in ``range(n)`` as one barrier stage: all ``n`` tasks start
    together (Spark fails the job when fewer slots are free); results ordered by index.

    When a task fails (its Python worker dies, its executor is lost), Spark runs the whole stage
    again, up to ``spark.stage.maxConsecutiveAttempts`` times (4 by default), every task anew: ``fn``
    must be safe to run again. An exception that ``fn`` raises fails the attempt the same way, so
    ``fn`` should return its own errors as values.

    ``profile`` (a :class:`pyspark.resource.ResourceProfile`) gives the stage's tasks their own
    resources (:mod:`deepflash.spark.resources`); None: the application's task resources.
    """
    if n < 1:
        raise ValueError(f"a barrier stage of {n} tasks: expected at least 1")
    return _collect(spark, fn, n, barrier=True, profile=profile)
