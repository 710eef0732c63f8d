"""trial_threads: the cores of an executor split between the parallel trials it runs, from the
session's settings alone (no SparkContext, so a Connect session answers too)."""
from __future__ import annotations

import pytest

from deepflash.tuning.base import trial_threads


class _Conf:
    def __init__(self, values: dict):
        self.values = values

    def get(self, key, default=None):
        return self.values.get(key, default)


class _Session:
    """A session with settings and nothing else: no sparkContext to fall back on."""

    def __init__(self, **values):
        self.conf = _Conf({k.replace("_", "."): v for k, v in values.items()})


@pytest.mark.parametrize("settings, parallelism, threads", [
    ({"spark_master": "local[8]"}, 2, 4),
    ({"spark_master": "local[8]"}, 16, 1),           # more trials than slots: one thread each
    ({"spark_master": "local[2]"}, 1, 2),
    ({"spark_master": "local[8]", "spark_task_cpus": "2"}, 2, 4),   # 4 slots of 2 cores: 2 trials share 8
    ({"spark_master": "local[8]", "spark_task_cpus": "2"}, 8, 2),   # 4 at once, 2 cores each
    ({"spark_master": "yarn", "spark_executor_instances": "3", "spark_executor_cores": "6"}, 3, 2),
])
def test_an_executors_cores_split_between_its_parallel_trials(settings, parallelism, threads):
    assert trial_threads(_Session(**settings), parallelism) == threads
