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
    """Each encoding is one Spark task (a one-task job); ``parallelism`` of them run at once.

    The jobs carry a job tag of their own (:func:`~deepflash.spark.tags.tagged_jobs`), interrupted
    when the batch ends by an error or Ctrl-C. The problem (its series included) travels in each
    task's closure, so a classic session and a Connect one serve alike.

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
        from deepflash.spark.tags import tagged_jobs
        from deepflash.spark.tasks import run_tasks

        task = functools.partial(evaluate_one, problem, threads=self.threads)

        def run(encoding: tuple[int, ...]) -> Evaluation:
            return run_tasks(self.spark, task, [tuple(encoding)])[0]

        with tagged_jobs(self.spark, "evolution-evaluations", interrupt=True) as tag:
            # Each pool thread tags its own jobs: a tag holds for the thread that adds it.
            with tag.pool(self.parallelism) as pool:
                return list(pool.map(run, encodings))
