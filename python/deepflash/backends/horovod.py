"""Runs ``numProc`` training processes on Spark executors with ``horovod.spark.run`` (Gloo)."""
from __future__ import annotations

import logging
import os
import traceback
from typing import Any, Callable

from deepflash import fs
from deepflash.backends.base import Backend, WorkerError, register

log = logging.getLogger("deepflash")

# horovod.spark.run waits this long for all its Spark tasks to start before giving up, so a
# cluster that cannot host every process fails instead of hanging.
START_TIMEOUT_S = int(os.environ.get("DEEPFLASH_HOROVOD_START_TIMEOUT", "120"))
# Frames of a worker's traceback carried into the driver's error (the full text is logged).
ERROR_FRAMES = 6


def available_slots(spark) -> int:
    """Task slots the cluster offers right now: total cores divided by ``spark.task.cpus``."""
    sc = spark.sparkContext
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    return max(1, sc.defaultParallelism // max(task_cpus, 1))


class _ReportingFn:
    """Wraps the rank function: a rank that raises first writes its traceback to
    ``<errors_to>/rank-<r>.txt``, so the driver can say what failed instead of Horovod's
    "one or more processes exited with non-zero status"."""

    def __init__(self, fn: Callable[..., Any], errors_to: str):
        self.fn, self.errors_to = fn, errors_to

    def __call__(self, *args):
        try:
            return self.fn(*args)
        except BaseException as e:
            rank = os.environ.get("HOROVOD_RANK", "unknown")
            text = f"{type(e).__name__}: {e}\n{''.join(traceback.format_exc())}"
            try:
                fs.write_bytes(fs.join(self.errors_to, f"rank-{rank}.txt"), text.encode("utf-8"))
            except Exception:  # noqa: BLE001  (the original error matters more than this one)
                pass
            raise


def read_worker_errors(errors_to: str) -> list[tuple[str, str]]:
    """``(rank, traceback text)`` of every rank that wrote one under ``errors_to``."""
    out = []
    for name in fs.listdir(errors_to):
        if name.startswith("rank-") and name.endswith(".txt"):
            out.append((name[len("rank-"):-len(".txt")], fs.read_bytes(fs.join(errors_to, name)).decode("utf-8")))
    return out


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

    def run(self, fn: Callable[..., Any], args: tuple = (), errors_to: str | None = None) -> list[Any]:
        import horovod.spark

        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        target = _ReportingFn(fn, errors_to) if errors_to else fn
        try:
            return horovod.spark.run(target, args=args, num_proc=self._num_proc, use_gloo=True, use_mpi=False,
                                     start_timeout=START_TIMEOUT_S, env=env, verbose=0)
        except Exception as e:
            reports = read_worker_errors(errors_to) if errors_to else []
            if not reports:
                raise
            for rank, text in reports:
                log.error("training process rank %s failed:\n%s", rank, text)
            rank, text = reports[0]
            first_line = text.splitlines()[0]
            tail = "\n".join(text.rstrip().splitlines()[-2 * ERROR_FRAMES:])
            raise WorkerError(f"training process rank {rank} of {self._num_proc} failed: {first_line}\n"
                              f"last frames on the worker:\n{tail}") from e
        finally:
            if errors_to:
                fs.remove(errors_to)
