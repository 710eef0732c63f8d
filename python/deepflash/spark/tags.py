"""Tagging a block's Spark jobs so that they can be interrupted together, from any thread.

On a Connect session: the session's operation tags (``addTag``/``interruptTag``); the server
interrupts every operation of the session that carries the tag, whichever client thread started it.
On a classic session, a session tag names its JVM thread (``spark-session-<id>-thread-<id>-<tag>``),
so ``interruptTag`` from the caller's thread misses the jobs a worker thread started; SparkContext's
job tags (``addJobTag``/``cancelJobsWithTag``) do not, and a classic session has its SparkContext.

A tag holds for the thread that adds it; :meth:`JobTag.thread` starts a thread that carries it.

Example:
    >>> with tagged_jobs(spark, "optuna-search", interrupt=True) as tag:
    ...     tag.thread(lambda: df.collect()).join(60)
    # the collect still running after 60 s is interrupted when the block exits
"""
from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from deepflash.spark.session import is_connect

log = logging.getLogger("deepflash")


class JobTag:
    """One tag, unique to this block: ``deepflash-<name>-<12 hex digits>``."""

    def __init__(self, spark, name: str):
        self.spark = spark
        self.tag = f"deepflash-{name}-{uuid.uuid4().hex[:12]}"

    def add(self) -> None:
        """Tags the calling thread's next jobs."""
        if is_connect(self.spark):
            self.spark.addTag(self.tag)
        else:  # classic: a session tag is per JVM thread (see the module's docstring)
            self.spark.sparkContext.addJobTag(self.tag)

    def remove(self) -> None:
        if is_connect(self.spark):
            self.spark.removeTag(self.tag)
        else:
            self.spark.sparkContext.removeJobTag(self.tag)

    def thread(self, target: Callable[[], object], name: str | None = None) -> threading.Thread:
        """Starts a daemon thread that runs ``target`` with its jobs tagged."""

        def run() -> None:
            self.add()
            try:
                target()
            finally:
                self.remove()

        thread = threading.Thread(target=run, name=name or self.tag, daemon=True)
        thread.start()
        return thread

    @contextlib.contextmanager
    def pool(self, max_workers: int, name: str | None = None) -> Iterator[ThreadPoolExecutor]:
        """A thread pool whose threads tag their jobs; on leaving the block (all done, an error,
        Ctrl-C) the runs not yet started are dropped, without waiting for the running ones (the
        block that holds the tag interrupts those)."""
        pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name or self.tag, initializer=self.add)
        try:
            yield pool
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def interrupt(self) -> None:
        """Interrupts every job of the session that carries the tag, in any thread."""
        try:
            if is_connect(self.spark):
                self.spark.interruptTag(self.tag)
            else:  # classic: cancels with interruption of the task threads (Python workers killed)
                self.spark.sparkContext.cancelJobsWithTag(self.tag)
        except Exception as e:  # the session is already gone: nothing of it still runs
            log.warning("could not interrupt the Spark jobs tagged %s: %s", self.tag, e)


@contextlib.contextmanager
def tagged_jobs(spark, name: str, interrupt: bool) -> Iterator[JobTag]:
    """Tags the block's jobs (those of the threads that :meth:`JobTag.thread` starts too); with
    ``interrupt``, interrupts whatever of them still runs when the block exits: a timeout, an
    error, Ctrl-C."""
    tag = JobTag(spark, name)
    tag.add()
    try:
        yield tag
    finally:
        try:
            if interrupt:
                tag.interrupt()
        finally:
            tag.remove()
