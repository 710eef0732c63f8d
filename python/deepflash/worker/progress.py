"""The per-epoch callbacks that record a fit: its checkpoint, its stage, its epoch times, its log
line, and the test-only crash hook.

Test-only fault injection
    ``DEEPFLASH_TEST_CRASH="rank=1,epoch=3,marker=/path/to/marker"`` in the environment (the
    barrier-stage backends pass the driver's ``DEEPFLASH_*`` variables to their ranks) makes process
    ``rank`` end with ``os._exit(1)`` at the start of ``epoch`` (1-based), once: it creates the
    marker file first, and does nothing when the marker exists, so the next fit runs through. The
    marker path must not contain a comma. ``,kill=parent`` kills the process's parent first (a
    barrier rank's task Python worker: the task is lost, and Spark retries the stage);
    ``,kill=executor`` kills the executor JVM that runs the task (on a cluster: the executor is
    lost, its worker starts a new one, and Spark retries the stage).
    :func:`crash_hook` reads the variable; the training loop adds the hook it returns. This exists
    for the resume tests; never set it in real runs.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

import tensorflow as tf

from deepflash.processes import parent_pid
from deepflash.worker.settings import CRASH_ENV

log = logging.getLogger("deepflash")


class CheckpointCallback(tf.keras.callbacks.Callback):
    """After every epoch saves everything training continues from, on every rank in step.

    It must come after the learning-rate and early-stopping callbacks in the callback list, so it
    records the state they leave at the end of the epoch. ``save(epoch, history)`` writes
    (rank 0 only); ``barrier()``, when given, makes every rank wait until the checkpoint of an
    epoch is written before any of them starts the next, so a rank that dies at the start of epoch
    k+1 never races the checkpoint of epoch k.
    """

    def __init__(self, save: Callable[[int, dict], None] | None, history_before: dict,
                 barrier: Callable[[], None] | None = None):
        super().__init__()
        self.save, self.barrier = save, barrier
        self.history = {k: list(v) for k, v in history_before.items()}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        if self.save is not None:
            self.save(epoch + 1, self.history)
        if self.barrier is not None:
            self.barrier()


class StageLog(tf.keras.callbacks.Callback):
    """Writes the cascade stage (1-based) into every epoch's logs as ``stage``, so the history
    (and MLflow, and the learning-curve plot) show which stage trained each epoch."""

    def __init__(self, stage: int):
        super().__init__()
        self.stage = int(stage)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = float(self.stage)


class EpochTimes(tf.keras.callbacks.Callback):
    """Appends each epoch's training seconds to ``seconds``: from the epoch's start to the end of
    its last step. It must come first in the callback list, so the epoch-end callbacks
    (validation, checkpoints) are not counted."""

    def __init__(self, seconds: list[float]):
        super().__init__()
        self.seconds = seconds
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


class EpochLogger(tf.keras.callbacks.Callback):
    """One log line per epoch: its number, every metric and its seconds."""

    def __init__(self, epochs: int, prefix: str = ""):
        super().__init__()
        self.epochs, self.prefix = epochs, prefix
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()) if k not in ("lr", "stage"))
        log.info("%sepoch %d/%d %s (%.1fs)", self.prefix, epoch + 1, self.epochs, metrics,
                 time.time() - self._started)


class CrashHook(tf.keras.callbacks.Callback):
    """Test-only fault injection (see :func:`crash_hook`): ends this process with
    ``os._exit(1)`` at the start of ``epoch`` (1-based), once: the marker file is created first
    and a marker that exists disarms the hook. ``kill="parent"`` first kills its parent with
    SIGKILL (for a barrier rank process, the task's Python worker, as when Spark loses it);
    ``kill="executor"`` the executor JVM above it."""

    def __init__(self, epoch: int, marker: str, kill: str = "self"):
        super().__init__()
        self.epoch, self.marker, self.kill = epoch, marker, kill

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 != self.epoch:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        victim = {"self": lambda: None, "parent": os.getppid, "executor": executor_jvm}[self.kill]()
        log.warning("DEEPFLASH_TEST_CRASH: rank process %d exits at the start of epoch %d%s", os.getpid(), epoch + 1,
                    f", killing {self.kill} process {victim}" if victim else "")
        if victim:
            os.kill(victim, signal.SIGKILL)
        os._exit(1)


def executor_jvm() -> int:
    """The pid of the executor JVM (``CoarseGrainedExecutorBackend``) that this process descends from.

    Raises:
        RuntimeError: when no ancestor is one (local mode runs tasks in the driver's JVM).
    """
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"CoarseGrainedExecutorBackend" in f.read():
                    return pid
            pid = parent_pid(pid)
        except OSError:
            break
    raise RuntimeError(f"{CRASH_ENV}: kill=executor, but process {os.getpid()} runs under no executor JVM")


def crash_hook(rank: int) -> CrashHook | None:
    """The :class:`CrashHook` that ``DEEPFLASH_TEST_CRASH`` asks for on this rank, or None (see the
    module docstring)."""
    spec = os.environ.get(CRASH_ENV, "").strip()
    if not spec:
        return None
    try:
        fields = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        target_rank, epoch, marker = int(fields.get("rank", 0)), int(fields["epoch"]), fields["marker"]
        kill = fields.get("kill", "self")
        if kill not in ("self", "parent", "executor"):
            raise ValueError(kill)
    except (KeyError, ValueError):
        raise ValueError(f"{CRASH_ENV} == {spec!r}, must look like 'rank=1,epoch=3,marker=/path' "
                         "(optionally ',kill=parent' or ',kill=executor')") from None
    return CrashHook(epoch, marker, kill=kill) if target_rank == rank else None
