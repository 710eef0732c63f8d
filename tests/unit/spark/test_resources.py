"""What the training stage asks of each executor (deepflash/spark/resources.py), on fake sessions."""
from __future__ import annotations

import dataclasses

import pytest

from deepflash.spark.resources import plan_resources, training_resources
from deepflash.spark.slots import Slots
from helpers import ConfSession


def session(master: str, **settings) -> ConfSession:
    return ConfSession(**{"spark.master": master, **{k: str(v) for k, v in settings.items()}})


STANDALONE_2X2 = Slots(4, 2, "spark.cores.max=4, spark.executor.cores=2")


def test_local_master_falls_back_to_the_application_resources_and_says_why():
    plan = training_resources(session("local[2]"), Slots(2, 2, "spark.master=local[2]"), 2)
    assert not plan.by_stage and plan.profile is None
    assert plan.task_cpus == 1
    assert "local[2]" in plan.reason and "no stage-level scheduling" in plan.reason
    assert plan.slots(Slots(2, 2, "x")) == Slots(2, 2, "x")


def test_gpu_executors_run_one_rank_per_gpu_with_their_share_of_the_cores():
    spark = session("spark://h:7077", **{"spark.executor.cores": 8, "spark.executor.resource.gpu.amount": 2,
                                         "spark.task.resource.gpu.amount": 0.125})
    plan = plan_resources(spark, Slots(16, 8, "conf"), 4)
    assert plan.by_stage
    assert (plan.task_cpus, plan.task_gpus, plan.ranks_per_executor) == (4, 1.0, 2)
    # the other stages keep one core and an eighth of a GPU per task
    assert "spark.task.cpus=1" in plan.reason and "0.125 GPU(s) per task" in plan.reason
    # 2 executors x 2 GPUs: 4 training slots, whatever the ETL slots
    assert plan.slots(Slots(16, 8, "conf")).total == 4


def test_cpu_executors_run_one_rank_each_with_all_their_cores():
    spark = session("spark://h:7077", **{"spark.executor.cores": 2, "spark.cores.max": 4})
    plan = plan_resources(spark, STANDALONE_2X2, 2)
    assert plan.by_stage and (plan.task_cpus, plan.task_gpus, plan.ranks_per_executor) == (2, 0.0, 1)
    assert plan.slots(STANDALONE_2X2).total == 2
    # more ranks than executors share an executor's cores evenly
    plan = plan_resources(spark, STANDALONE_2X2, 4)
    assert (plan.task_cpus, plan.ranks_per_executor) == (1, 2)
    assert not plan.by_stage  # one core each is what every task already gets


def test_executor_cores_come_from_the_slots_where_the_settings_leave_them_open():
    spark = session("spark://h:7077")  # each executor takes a whole worker: cores counted by a probe
    plan = plan_resources(spark, Slots(8, 4, "a probe stage of 8 tasks"), 2)
    assert (plan.task_cpus, plan.ranks_per_executor) == (4, 1)


def test_application_resources_that_already_fit_need_no_profile():
    spark = session("spark://h:7077", **{"spark.executor.cores": 4, "spark.task.cpus": 4})
    plan = plan_resources(spark, Slots(2, 1, "conf"), 2)
    assert not plan.by_stage and "already give" in plan.reason


def test_a_session_that_cannot_build_a_profile_falls_back_with_the_reason(monkeypatch):
    import pyspark.resource

    class Unavailable:
        def __init__(self):
            raise NotImplementedError("no ResourceProfile on this server")

    monkeypatch.setattr(pyspark.resource, "ResourceProfileBuilder", Unavailable)
    spark = session("spark://h:7077", **{"spark.executor.cores": 2})
    plan = training_resources(spark, STANDALONE_2X2, 2)
    assert not plan.by_stage and plan.profile is None and plan.task_cpus == 1
    assert "stage-level scheduling is not available here" in plan.reason
    assert "no ResourceProfile on this server" in plan.reason


def test_a_profile_the_cluster_manager_refuses_runs_the_stage_without_it(monkeypatch, caplog):
    from deepflash.backends import stage
    from deepflash.backends.stage import RankOutcome

    calls = []

    def run_barrier(spark, fn, n, profile=None):
        calls.append(profile)
        if profile is not None:
            raise RuntimeError("TaskResourceProfiles are only supported for Standalone, Yarn and Kubernetes "
                               "cluster for now when dynamic allocation is disabled.")
        return [RankOutcome(rank=i, value=i) for i in range(n)]

    monkeypatch.setattr(stage, "run_barrier", run_barrier)
    resources = plan_resources(session("spark://h:7077", **{"spark.executor.cores": 2}), STANDALONE_2X2, 2)
    with caplog.at_level("INFO", logger="deepflash"):
        values = stage.run_stage(object(), lambda index: None, 2,
                                 resources=dataclasses.replace(resources, profile="a profile"))
    assert values == [0, 1] and calls == ["a profile", None]
    assert "Spark refused the training stage's own resources (TaskResourceProfiles are only" in caplog.text
    assert "training tasks: the training stage asks for its own resources" in caplog.text


def test_a_rank_failure_with_a_profile_is_not_retried(monkeypatch):
    from deepflash.backends import WorkerError, stage

    calls = []

    def run_barrier(spark, fn, n, profile=None):
        calls.append(profile)
        raise RuntimeError("Job aborted: Traceback (most recent call last):\n  File x\n"
                           "ValueError: bad ResourceProfile usage")

    monkeypatch.setattr(stage, "run_barrier", run_barrier)
    resources = plan_resources(session("spark://h:7077", **{"spark.executor.cores": 2}), STANDALONE_2X2, 2)
    with pytest.raises(WorkerError, match="ValueError: bad ResourceProfile usage"):
        stage.run_stage(object(), lambda index: None, 2, resources=dataclasses.replace(resources, profile="p"))
    assert calls == ["p"]
