"""Task slots from a session's settings (deepflash/spark/slots.py), on fake sessions: no Spark."""
from __future__ import annotations

import pytest

from deepflash.spark.slots import Slots, slots_from_conf
from helpers import ConfSession


def session(master: str, **settings) -> ConfSession:
    return ConfSession(**{"spark.master": master, **{f"spark.{k.replace('_', '.')}": v for k, v in settings.items()}})


def test_local_masters():
    assert slots_from_conf(session("local[2]")) == Slots(2, 2, "spark.master=local[2]")
    assert slots_from_conf(session("local")).total == 1
    assert slots_from_conf(session("local[4, 2]")).total == 4
    # local[*]: the cores of the machine the driver runs on, which may not be this one
    assert slots_from_conf(session("local[*]")) is None


def test_local_cluster_counts_every_executor():
    slots = slots_from_conf(session("local-cluster[2,1,1024]"))
    assert (slots.total, slots.per_executor) == (2, 1)
    assert "local-cluster[2,1,1024]" in slots.describe()


def test_executor_instances_times_cores():
    slots = slots_from_conf(session("yarn", executor_instances="3", executor_cores="4"))
    assert (slots.total, slots.per_executor) == (12, 4)
    assert slots.describe() == "12 task slot(s) (spark.executor.instances=3 x spark.executor.cores=4)"


def test_standalone_cores_max():
    slots = slots_from_conf(session("spark://h:7077", cores_max="8", executor_cores="2"))
    assert (slots.total, slots.per_executor) == (8, 2)
    # cores.max without executor cores: each executor takes a whole worker, so the count is open
    assert slots_from_conf(session("spark://h:7077", cores_max="8")) is None


def test_task_cpus_divide_the_cores():
    assert slots_from_conf(session("local[4]", task_cpus="2")).total == 2
    slots = slots_from_conf(session("yarn", executor_instances="2", executor_cores="4", task_cpus="2"))
    assert (slots.total, slots.per_executor) == (4, 2)


def test_gpu_amounts_cap_the_slots():
    gpus = {"spark.task.resource.gpu.amount": "1", "spark.executor.resource.gpu.amount": "2"}
    spark = ConfSession(**{"spark.master": "yarn", "spark.executor.instances": "3", "spark.executor.cores": "8",
                           **gpus})
    assert (slots_from_conf(spark).total, slots_from_conf(spark).per_executor) == (6, 2)
    half = {**spark.values, "spark.task.resource.gpu.amount": "0.5"}
    assert slots_from_conf(ConfSession(**half)).per_executor == 4


def test_dynamic_allocation_leaves_the_count_open():
    spark = session("yarn", executor_instances="2", executor_cores="4")
    spark.values["spark.dynamicAllocation.enabled"] = "true"
    assert slots_from_conf(spark) is None
    assert slots_from_conf(session("yarn")) is None


def test_a_setting_that_is_not_a_number_is_named():
    with pytest.raises(ValueError, match="`spark.executor.cores` == 'four'"):
        slots_from_conf(session("yarn", executor_instances="2", executor_cores="four"))


def test_at_least_reads_in_the_description():
    assert Slots(8, 4, "a probe stage of 8 tasks", at_least=True).describe() == \
        "at least 8 task slot(s) (a probe stage of 8 tasks)"
