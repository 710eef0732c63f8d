"""How many Spark tasks the cluster runs at once, from the session's settings or a probe stage,
never from ``defaultParallelism`` (a Connect session has no SparkContext to ask).

From the settings (:func:`slots_from_conf`): ``local[n]``, ``local-cluster[e,c,m]``,
``spark.executor.instances`` x ``spark.executor.cores``, or standalone's ``spark.cores.max``, each
executor's slots being its cores over ``spark.task.cpus`` and, where tasks ask for a resource
(``spark.task.resource.gpu.amount``), its amount of it over the task's. Where the settings leave
the count open (``local[*]`` on a server, a standalone cluster that gives each executor a whole
worker, dynamic allocation), a probe stage (:func:`probe_slots`) counts the Python workers that
run at once.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from deepflash.spark.session import conf, conf_int, master
from deepflash.spark.tasks import run_tasks

# The probe's tasks each hold their slot this long, so that all of them run at the same time.
PROBE_HOLD_S = 0.3
PROBE_TASKS = 8

_LOCAL = re.compile(r"^local(?:\[(\*|\d+)(?:,\s*\d+)?\])?$")
_LOCAL_CLUSTER = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]$")


@dataclass(frozen=True)
class Slots:
    """Task slots: ``total`` at once, ``per_executor`` on one executor; ``source`` says how they
    were counted (for messages). A probe that filled every task it ran says ``at_least``."""

    total: int
    per_executor: int
    source: str
    at_least: bool = False

    def describe(self) -> str:
        return f"{'at least ' if self.at_least else ''}{self.total} task slot(s) ({self.source})"


def _per_executor(spark, cores: int) -> int:
    task_cpus = max(1, conf_int(spark, "spark.task.cpus", 1))
    slots = cores // task_cpus
    for key in _task_resources(spark):
        name = key[len("spark.task.resource."):-len(".amount")]
        task_amount = float(conf(spark, key) or 0)
        executor_amount = float(conf(spark, f"spark.executor.resource.{name}.amount") or 0)
        if task_amount > 0 and executor_amount > 0:
            slots = min(slots, int(executor_amount // task_amount))
    return max(0, slots)


def _task_resources(spark) -> list[str]:
    gpu = "spark.task.resource.gpu.amount"
    return [gpu] if conf(spark, gpu) else []


def slots_from_conf(spark) -> Slots | None:
    """The slots the session's settings determine; None where they leave the count open."""
    spark_master = master(spark)
    local = _LOCAL.match(spark_master)
    if local:
        cores = local.group(1) or "1"
        if cores == "*":
            return None  # the cores of the machine the driver runs on, which may not be this one
        per = _per_executor(spark, int(cores))
        return Slots(per, per, f"spark.master={spark_master}")
    cluster = _LOCAL_CLUSTER.match(spark_master)
    if cluster:
        per = _per_executor(spark, int(cluster.group(2)))
        return Slots(per * int(cluster.group(1)), per, f"spark.master={spark_master}")
    if (conf(spark, "spark.dynamicAllocation.enabled", "false") or "").lower() == "true":
        return None
    cores = conf_int(spark, "spark.executor.cores", 0)
    instances = conf_int(spark, "spark.executor.instances", 0)
    if cores and instances:
        per = _per_executor(spark, cores)
        return Slots(per * instances, per, f"spark.executor.instances={instances} x spark.executor.cores={cores}")
    cores_max = conf_int(spark, "spark.cores.max", 0)
    if cores_max and cores:
        per = _per_executor(spark, cores)
        return Slots(per * (cores_max // cores), per, f"spark.cores.max={cores_max}, spark.executor.cores={cores}")
    return None


def _probe_task(_index: int) -> tuple[str, int, int]:
    import socket

    time.sleep(PROBE_HOLD_S)
    # A Python worker's parent is its executor's daemon (or the executor itself): one per executor.
    return socket.gethostname(), os.getppid(), os.getpid()


def probe_slots(spark, tasks: int = PROBE_TASKS) -> Slots:
    """Runs ``tasks`` tasks that each hold their slot for a moment and counts the distinct Python
    workers that ran them: the slots (a worker runs one task at a time, and an executor starts
    no more workers than it runs tasks at once). All ``tasks`` busy means at least that many."""
    seen = run_tasks(spark, _probe_task, range(tasks))
    workers = {(host, pid) for host, _, pid in seen}
    per: dict[tuple[str, int], set[int]] = {}
    for host, parent, pid in seen:
        per.setdefault((host, parent), set()).add(pid)
    return Slots(len(workers), max(len(p) for p in per.values()), f"a probe stage of {tasks} tasks",
                 at_least=len(workers) >= tasks)


def count_slots(spark, at_least: int = PROBE_TASKS) -> Slots:
    """The session's task slots: from its settings, else from a probe of ``at_least`` tasks or more."""
    return slots_from_conf(spark) or probe_slots(spark, max(at_least, 2))
