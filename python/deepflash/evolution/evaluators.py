"""Evaluating a batch of encodings: in this process (:class:`LocalEvaluator`) or one Spark task per
encoding (:class:`SparkEvaluator`).

:func:`evaluate_one` is the worker side: it caps TensorFlow's threads, scores one encoding and
turns an error into a failed :class:`Evaluation` rather than a failed job.
"""
from __future__ import annotations

import functools
import logging
import math
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from deepflash.evolution.problem import Problem

log = logging.getLogger("deepflash")


@dataclass(frozen=True)
class Evaluation:
    """One encoding's fitness values (NaN when it failed), its seconds and its error, if any."""

    encoding: tuple[int, ...]
    fitness: tuple[float, ...]
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not any(math.isnan(v) for v in self.fitness)


def evaluate_one(problem: Problem, encoding: tuple[int, ...], threads: int = 0) -> Evaluation:
    """Scores ``encoding`` in this process; ``threads`` > 0 caps TensorFlow's CPU threads first."""
    started = time.time()
    try:
        if threads > 0:
            from deepflash.worker.devices import configure_tensorflow

            configure_tensorflow(threads=threads)
        fitness = problem.evaluate(tuple(encoding))
        return Evaluation(tuple(encoding), fitness, time.time() - started)
    except Exception as e:  # one broken individual is a result, not the end of the search
        error = f"{type(e).__name__}: {e}\n{''.join(traceback.format_exception(e))}"
        return Evaluation(tuple(encoding), (math.nan,) * len(problem.maximize), time.time() - started, error)


class Evaluator:
    """Scores a batch of distinct encodings; the order of the answer is the order of the batch."""

    parallelism = 1

    def evaluate(self, problem: Problem, encodings: Sequence[tuple[int, ...]]) -> list[Evaluation]:
        raise NotImplementedError


class LocalEvaluator(Evaluator):
    """One encoding after another, in this process (tests, notebooks without Spark)."""

    def evaluate(self, problem: Problem, encodings: Sequence[tuple[int, ...]]) -> list[Evaluation]:
        return [evaluate_one(problem, e) for e in encodings]


class SparkEvaluator(Evaluator):
    """Each encoding is one Spark task (a one-partition job); ``parallelism`` of them run at once.

    The jobs run in a job group of their own, cancelled when the batch ends by an error or Ctrl-C.

    Args:
        spark: the session.
        parallelism: concurrent evaluations, >= 1.
        threads: TensorFlow CPU threads per evaluation; by default the executor's cores split
            between the concurrent evaluations, as search trials split them.

    Example:
        >>> SparkEvaluator(spark, parallelism=2).evaluate(problem, [(2, 1, 0, 0, 4), (3, 2, 0, 0, 8)])
    """

    def __init__(self, spark, parallelism: int = 1, threads: int | None = None):
        from deepflash.tuning.base import trial_threads

        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"`parallelism` == {parallelism!r}, must be an integer >= 1")
        self.spark, self.parallelism = spark, parallelism
        self.threads = trial_threads(spark, parallelism) if threads is None else int(threads)

    def evaluate(self, problem: Problem, encodings: Sequence[tuple[int, ...]]) -> list[Evaluation]:
        from pyspark import inheritable_thread_target

        from deepflash.tuning.base import job_group

        sc = self.spark.sparkContext
        task = functools.partial(evaluate_one, problem, threads=self.threads)

        def run(encoding: tuple[int, ...]) -> Evaluation:
            return sc.parallelize([tuple(encoding)], 1).map(task).collect()[0]

        with job_group(sc, f"deepflash evolutionary search: {len(encodings)} evaluations", cancel=True):
            # Wrapped here, inside the group: each thread's jobs inherit the group's properties.
            target = inheritable_thread_target(self.spark)(run)
            with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
                return list(pool.map(target, encodings))
