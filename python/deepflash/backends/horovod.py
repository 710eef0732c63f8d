"""Runs ``numProc`` training processes on Spark executors with ``horovod.spark.run`` (Gloo)."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from deepflash.backends.base import Backend, register

log = logging.getLogger("deepflash")

# horovod.spark.run waits this long for all its Spark tasks to start before giving up, so a
# cluster that cannot host every process fails instead of hanging.
START_TIMEOUT_S = int(os.environ.get("DEEPFLASH_HOROVOD_START_TIMEOUT", "120"))


def available_slots(spark) -> int:
    """Task slots the cluster offers right now: total cores divided by ``spark.task.cpus``."""
    sc = spark.sparkContext
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    return max(1, sc.defaultParallelism // max(task_cpus, 1))


@register("horovod")
class HorovodBackend(Backend):
    distributed = True

    def check(self, spark) -> None:
        slots = available_slots(spark)
        if self._num_proc > slots:
            raise ValueError(
                f"`numProc` == {self._num_proc}, but the cluster has {slots} task slot(s) "
                f"(spark.default.parallelism / spark.task.cpus); every Horovod process needs its own slot, "
                f"so lower numProc to <= {slots} or add executors")
        try:
            import horovod.spark  # noqa: F401
        except ImportError as e:
            raise ImportError(f"backend='horovod' needs Horovod 0.28.1 built with TensorFlow and Gloo: {e}; "
                              "run `gradle setup`, or use backend='local'") from None

    def run(self, fn: Callable[..., Any], args: tuple = ()) -> list[Any]:
        import horovod.spark

        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return horovod.spark.run(fn, args=args, num_proc=self._num_proc, use_gloo=True, use_mpi=False,
                                 start_timeout=START_TIMEOUT_S, env=env, verbose=0)
