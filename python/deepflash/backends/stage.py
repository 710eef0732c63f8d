"""What the backends that run ranks as one Spark barrier stage share (``horovod``, ``barrier``).

Each rank is one barrier task. The tasks learn their peers from ``BarrierTaskContext.getTaskInfos()``
and number themselves host by host (:func:`assign_slots`); a rank that raises does not fail its task
(a failed barrier task makes Spark retry the whole stage) but returns a :class:`RankOutcome` with its
traceback, and :func:`run_stage` raises :class:`~deepflash.backends.base.WorkerError` on the driver
with the first cause. When a task fails before its rank runs (its Python worker cannot unpickle the
task, e.g. ``No module named 'deepflash'``), the worker's own exception line, which Spark buries in
its error text, leads the driver's error (:func:`worker_exception`).
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from deepflash.backends.base import DEFAULT_TIMEOUT, Backend, WorkerError
from deepflash.spark.resources import TrainingResources, training_resources
from deepflash.spark.slots import Slots, count_slots
from deepflash.spark.tasks import run_barrier

log = logging.getLogger("deepflash")

# Frames of a worker's traceback carried into the driver's error (the full text is logged).
ERROR_FRAMES = 6
TRACEBACK_HEADER = "Traceback (most recent call last):"


def worker_exception(text: str) -> str | None:
    """The exception line of the last Python traceback in a Spark error's text, such as
    ``ModuleNotFoundError: No module named 'deepflash'``; None when the text holds no traceback.

    Spark embeds a Python worker's traceback in its own message (after ``PythonException:``, among
    JVM frames); the exception line is the first unindented line after a traceback's header and its
    indented frames. Of chained exceptions the last one, the one that ended the worker, is taken.

    Example:
        >>> worker_exception("...PythonException: Traceback (most recent call last):\n"
        ...                  '  File "worker.py", line 1, in main\nKeyError: 'x'\n\tat org.apache...')
        "KeyError: 'x'"
    """
    found, in_traceback = None, False
    for line in text.splitlines():
        if TRACEBACK_HEADER in line:
            in_traceback = True
        elif in_traceback and line.strip() and not line[0].isspace():
            found, in_traceback = line.strip(), False
    return found


def available_slots(spark, num_proc: int = 1) -> Slots:
    """Task slots the cluster offers (:func:`~deepflash.spark.slots.count_slots`: from the
    session's settings, else a probe stage of at least ``num_proc`` tasks)."""
    return count_slots(spark, at_least=num_proc)


def check_slots(spark, num_proc: int, backend: str) -> TrainingResources:
    """The training stage's resources (:func:`~deepflash.spark.resources.training_resources`);
    raises before any training job when its ``num_proc`` tasks cannot be scheduled at once."""
    slots = available_slots(spark, num_proc)
    resources = training_resources(spark, slots, num_proc)
    slots = resources.slots(slots)
    if num_proc > slots.total and not slots.at_least:
        raise ValueError(
            f"`numProc` == {num_proc}, but the cluster has {slots.describe()}; every process of "
            f"backend={backend!r} needs its own slot, so lower numProc to <= {slots.total} or add executors")
    return resources


_logged_reasons: set[str] = set()


def log_resources(resources: TrainingResources) -> None:
    """Logs how the training stage gets its resources, once per reason in this process."""
    if resources.reason not in _logged_reasons:
        _logged_reasons.add(resources.reason)
        log.info("training tasks: %s", resources.reason)


@dataclass(frozen=True)
class Slot:
    """One rank's place in the job, as Horovod's launchers define it."""

    host: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    cross_rank: int
    cross_size: int


def assign_slots(task_hosts: list[str]) -> list[Slot]:
    """The slot of each barrier task (indexed by partition), from the host each task runs on.

    Ranks are numbered host by host (hosts in order of their first task), so that a host's ranks
    are contiguous as ``horovod.runner.common.util.hosts.get_host_assignments`` makes them; the
    cross rank of a local rank is its host's position among the hosts that have that local rank.
    """
    hosts: list[str] = []
    for host in task_hosts:
        if host not in hosts:
            hosts.append(host)
    tasks_of = {h: [i for i, t in enumerate(task_hosts) if t == h] for h in hosts}
    slots: dict[int, Slot] = {}
    rank = 0
    for host in hosts:
        for local_rank, task in enumerate(tasks_of[host]):
            peers = [h for h in hosts if len(tasks_of[h]) > local_rank]
            slots[task] = Slot(host=host, rank=rank, size=len(task_hosts), local_rank=local_rank,
                               local_size=len(tasks_of[host]), cross_rank=peers.index(host), cross_size=len(peers))
            rank += 1
    return [slots[i] for i in range(len(task_hosts))]


def task_hosts(ctx) -> list[str]:
    """The host of every task of the barrier stage, by partition."""
    return [info.address.rsplit(":", 1)[0] for info in ctx.getTaskInfos()]


def forwarded_env(prefixes: tuple[str, ...], exclude: Iterable[str] = ()) -> dict[str, str]:
    """The driver's variables with these prefixes (e.g. ``DEEPFLASH_``), which every rank sees, as
    under Horovod's own launchers; per-rank ones (``exclude``) are set per task."""
    skip = set(exclude)
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes) and k not in skip}


@dataclass(frozen=True)
class RankOutcome:
    """What one barrier task sends back: its rank's result, or its error."""

    rank: int
    value: Any = None
    error: str | None = None
    failed_at: float = 0.0

    @classmethod
    def failure(cls, rank: int, error: BaseException | str) -> RankOutcome:
        """Rank ``rank`` failed now: an exception (its type, message and the traceback being
        handled), or a message that already reads ``Type: text``."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
        return cls(rank=rank, error=error, failed_at=time.time())


@dataclass(frozen=True)
class Placement:
    """Where a barrier task's rank sits: its context, every task's host, every slot, its own."""

    ctx: Any
    hosts: list
    slots: list
    slot: Slot


class RankTask:
    """The body of one barrier task: places its rank, then runs ``fn(*args)`` as the backend says.

    Args:
        fn, args: what every rank runs.
        env: variables every rank sees (the driver's ``DEEPFLASH_*``, ...).
    """

    def __init__(self, fn: Callable[..., Any], args: tuple, env: dict[str, str]):
        self.fn, self.args, self.env = fn, args, env

    def __call__(self, index: int) -> RankOutcome:
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        hosts = task_hosts(ctx)
        slots = assign_slots(hosts)
        return self.run_rank(index, Placement(ctx=ctx, hosts=hosts, slots=slots, slot=slots[index]))

    def run_rank(self, index: int, place: Placement) -> RankOutcome:
        """Runs this task's rank; returns its value or its error (never raises for the rank's own failure)."""
        raise NotImplementedError


def first_failure(outcomes: list[RankOutcome], follow_on: tuple[str, ...] = (),
                  died: tuple[str, ...] = ()) -> RankOutcome | None:
    """The error to report: a rank's own failure before the ones it caused in the other ranks.

    Errors rank in three tiers, then by time and rank: a rank's own error first; then a rank whose
    process died (first line holding one of the ``died`` markers), which may be the cause or the
    effect of a peer's error; then errors whose first line holds one of the ``follow_on`` markers
    (what a collective reports when a peer broke off).
    """
    failed = [o for o in outcomes if o.error is not None]
    if not failed:
        return None

    def tier(o: RankOutcome) -> int:
        first = o.error.splitlines()[0]
        if any(m in first for m in follow_on):
            return 2
        return 1 if any(m in first for m in died) else 0

    return min(failed, key=lambda o: (tier(o), o.failed_at, o.rank))


# What Spark says when a cluster manager cannot run a stage with its own ResourceProfile.
PROFILE_REFUSED = ("ResourceProfile", "stage level scheduling", "Stage level scheduling")


def _run_barrier(spark, task: Callable[[int], RankOutcome], n: int, profile) -> list[RankOutcome]:
    """``run_barrier``; where Spark refuses the stage's ResourceProfile when the job starts (a
    cluster manager without stage-level scheduling), logs why and runs it without one."""
    if profile is None:
        return run_barrier(spark, task, n)
    try:
        return run_barrier(spark, task, n, profile)
    except Exception as e:
        text = str(e)
        if not any(m in text for m in PROFILE_REFUSED) or TRACEBACK_HEADER in text:
            raise
        log.warning("Spark refused the training stage's own resources (%s); it runs with the application's "
                    "task resources", text.strip().splitlines()[0][:300])
        return run_barrier(spark, task, n)


def run_stage(spark, task: Callable[[int], RankOutcome], num_proc: int,
              follow_on: tuple[str, ...] = (), died: tuple[str, ...] = (),
              resources: TrainingResources | None = None) -> list[Any]:
    """Runs ``task`` as ``num_proc`` barrier tasks of ``spark`` (a classic or Connect session,
    through :func:`~deepflash.spark.tasks.run_barrier`); returns the ranks' values ordered by rank.
    ``resources`` (:func:`check_slots`) gives the tasks the training stage's own resources.

    Raises:
        ValueError: ``spark`` is None (a barrier stage needs the session of the training data).
        WorkerError: a rank failed (the first cause, with its last frames), or a task ended
            without reporting (its Python worker exited or was killed).
    """
    if spark is None:
        raise ValueError(f"a barrier stage of {num_proc} training processes needs a SparkSession, got None: "
                         "pass the training DataFrame's session (`spark=dataset.sparkSession`)")
    n = num_proc
    if resources is not None:
        log_resources(resources)
    try:
        outcomes = _run_barrier(spark, task, n, resources.profile if resources is not None else None)
    except Exception as e:  # the task itself failed: a rank's Python worker raised, exited or was killed
        text = str(e).strip()
        cause = worker_exception(text)
        if cause is not None:
            raise WorkerError(f"{cause} (raised in the Python worker of a training process of {n}, before its rank "
                              "could report; see the executor's log)") from e
        reason = text.splitlines()[0] if text else type(e).__name__
        raise WorkerError(f"a training process of {n} ended without reporting (its Python worker exited "
                          f"or was killed; see the executor's log): {reason}") from e
    failure = first_failure(outcomes, follow_on, died)
    if failure is not None:
        for o in outcomes:
            if o.error is not None:
                log.error("training process rank %d failed:\n%s", o.rank, o.error)
        first_line = failure.error.splitlines()[0]
        tail = "\n".join(failure.error.rstrip().splitlines()[-2 * ERROR_FRAMES:])
        raise WorkerError(f"training process rank {failure.rank} of {n} failed: {first_line}\n"
                          f"last frames on the worker:\n{tail}")
    return [o.value for o in sorted(outcomes, key=lambda o: o.rank)]


class StageBackend(Backend):
    """A backend whose ranks are the tasks of one barrier stage (``horovod``, ``barrier``): it
    checks the slots before the fit, and gives the stage its own resources
    (:mod:`deepflash.spark.resources`)."""

    distributed = True

    def __init__(self, num_proc: int = 1, timeout: float = DEFAULT_TIMEOUT, keras_backend: str | None = None):
        super().__init__(num_proc, timeout, keras_backend)
        self._resources: TrainingResources | None = None

    def check(self, spark) -> None:
        self._resources = check_slots(spark, self._num_proc, self.name)

    def training_resources(self, spark) -> TrainingResources:
        """The training stage's resources, as :meth:`check` found them (found now if it did not run)."""
        if self._resources is None:
            self._resources = check_slots(spark, self._num_proc, self.name)
        return self._resources
