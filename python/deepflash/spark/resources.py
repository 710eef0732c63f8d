"""What a training stage asks of each executor: stage-level scheduling of the barrier stage.

A training rank wants a whole executor, or one GPU of it, while every other stage of the job (the
reads, the joins, the materialization, ``transform``) should keep the executor's normal slots.
Setting ``spark.task.cpus`` to the executor's cores for the whole application gets the first at the
cost of the second. Instead, :func:`training_resources` builds a
:class:`pyspark.resource.ResourceProfile` for the training stage alone, as xgboost's Spark
estimators do:

- an executor with GPUs (``spark.executor.resource.gpu.amount`` = G) runs one rank per GPU: each
  task asks for 1 GPU and the executor's cores over G;
- an executor without GPUs runs its share of the ranks (one, when there are as many executors as
  ranks), each task asking for the executor's cores over that share.

Spark hands the task its GPU addresses (``TaskContext.resources()["gpu"]``), which become the
rank's ``CUDA_VISIBLE_DEVICES``. The profile is a task-only one, which Spark schedules onto the
executors the application has (standalone, YARN, Kubernetes; Spark 3.4 or later).

Where stage-level scheduling is not available (``local`` masters, where the driver is the only
executor; a session that cannot build a profile) or not needed (the application's task resources
already give one rank per executor or GPU), the training stage runs with the application's task
resources, and :attr:`TrainingResources.reason` says why (the backends log it).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from deepflash.spark.session import conf, conf_int, master
from deepflash.spark.slots import Slots

GPU = "gpu"
# local and local[n]: every task runs in the driver. local-cluster[...] is a standalone cluster.
_LOCAL = re.compile(r"^local(\[.*\])?$")


@dataclass(frozen=True)
class TrainingResources:
    """The training stage's resources.

    Args:
        by_stage: the training stage asks for its own resources (stage-level scheduling).
        task_cpus, task_gpus: what each training task gets (its own, or the application's).
        ranks_per_executor: training tasks one executor runs at once.
        reason: how this was decided, for the log.
        profile: the stage's :class:`pyspark.resource.ResourceProfile` once built; None where the
            stage takes the application's task resources (and in a plan).
    """

    by_stage: bool
    task_cpus: int
    task_gpus: float
    ranks_per_executor: int
    reason: str
    profile: Any = None

    def slots(self, slots: Slots) -> Slots:
        """The training stage's slots on a cluster of ``slots`` (counted with the application's task
        resources): its executors times :attr:`ranks_per_executor`."""
        if not self.by_stage:
            return slots
        executors = max(1, slots.total // max(1, slots.per_executor))
        return Slots(executors * self.ranks_per_executor, self.ranks_per_executor,
                     f"{slots.source}; {self.ranks_per_executor} training task(s) per executor", slots.at_least)


def _float(spark, key: str) -> float:
    value = conf(spark, key)
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"Spark setting `{key}` == {value!r}: expected a number") from None


def _app_resources(spark) -> tuple[int, float]:
    return max(1, conf_int(spark, "spark.task.cpus", 1)), _float(spark, f"spark.task.resource.{GPU}.amount")


def plan_resources(spark, slots: Slots, num_proc: int) -> TrainingResources:
    """What the training stage of ``num_proc`` ranks should ask for, without building a profile (no
    JVM, no server): the decision :func:`training_resources` makes.

    Args:
        spark: the session (classic or Connect); only its settings are read.
        slots: its task slots with the application's task resources
            (:func:`~deepflash.spark.slots.count_slots`): the executors, and their cores where
            ``spark.executor.cores`` is unset.
        num_proc: the training ranks. Without GPUs they spread evenly over the executors, each
            taking its share of the executor's cores (the whole executor for one rank per executor).
    """
    app_cpus, app_gpus = _app_resources(spark)
    if _LOCAL.match(master(spark)):
        return TrainingResources(False, app_cpus, app_gpus, slots.per_executor,
                                 f"spark.master={master(spark)} runs every task in the driver, which has no "
                                 "stage-level scheduling: the training tasks take the application's task "
                                 f"resources (spark.task.cpus={app_cpus})")
    cores = conf_int(spark, "spark.executor.cores", 0) or slots.per_executor * app_cpus
    gpus = _float(spark, f"spark.executor.resource.{GPU}.amount")
    if gpus >= 1:
        per_executor = int(gpus)
        task_cpus, task_gpus = max(1, cores // per_executor), 1.0
        shape = (f"one per GPU, {task_cpus} CPU(s) and 1 GPU each (of the executor's {cores} core(s), "
                 f"{per_executor} GPU(s))")
    else:
        executors = max(1, slots.total // max(1, slots.per_executor))
        per_executor = min(max(1, cores), max(1, math.ceil(num_proc / executors)))
        task_cpus, task_gpus = max(1, cores // per_executor), 0.0
        shape = (f"{per_executor} per executor, {task_cpus} CPU(s) each (of the executor's {cores} core(s))")
    if task_cpus == app_cpus and task_gpus == app_gpus:
        return TrainingResources(False, app_cpus, app_gpus, per_executor,
                                 f"the application's task resources already give the training tasks {shape}")
    other = f"spark.task.cpus={app_cpus}" + (f" and {app_gpus:g} GPU(s) per task" if app_gpus else "")
    return TrainingResources(True, task_cpus, task_gpus, per_executor,
                             f"the training stage asks for its own resources (stage-level scheduling): {shape}; "
                             f"the other stages keep {other}")


def _build(plan: TrainingResources):
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    task = TaskResourceRequests().cpus(plan.task_cpus)
    if plan.task_gpus:
        task = task.resource(GPU, plan.task_gpus)
    # Task requests only: the stage runs on the executors the application has (a barrier stage
    # cannot run under dynamic allocation, which would need executor requests too).
    return ResourceProfileBuilder().require(task).build


def training_resources(spark, slots: Slots, num_proc: int) -> TrainingResources:
    """The training stage's :class:`TrainingResources`, with its ResourceProfile where one applies.

    Never raises for a cluster that cannot schedule by stage: it falls back to the application's
    task resources, and :attr:`~TrainingResources.reason` says why.
    """
    plan = plan_resources(spark, slots, num_proc)
    if not plan.by_stage:
        return plan
    try:
        profile = _build(plan)
    except Exception as e:  # noqa: BLE001  (an older Spark, a server without the feature: fall back)
        app_cpus, app_gpus = _app_resources(spark)
        return TrainingResources(False, app_cpus, app_gpus, slots.per_executor,
                                 f"stage-level scheduling is not available here ({type(e).__name__}: {e}); the "
                                 "training tasks take the application's task resources")
    return dataclasses.replace(plan, profile=profile)
