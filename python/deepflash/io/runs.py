"""A run's own files in the store, beside its checkpoint: who holds the run, and what it trains on.

``runs/<runId>/lock.json``
    Written by the driver of the fit that holds the run, removed when that fit ends in any way
    (:class:`RunLock`). A second fit with the same ``runId`` is refused while the lock stands.
    A lock is stale, and is taken over with a warning, when the host that wrote it is this one
    and its process is gone, or when it is older than :data:`STALE_SECONDS` (a driver on another
    host that died without cleaning up; delete the file to take it over sooner).

``runs/<runId>/run.json``
    The Params of the run that decide its batch stream (:data:`STREAM_PARAMS`). A fit resuming the
    run must give each of them the value it had: a different ``numProc``, ``seed`` or read mode
    would continue on other shards or another order, so :func:`check_stream` refuses it, naming the
    Param and both values.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

from deepflash.io import fs
from deepflash.processes import pid_alive

log = logging.getLogger("deepflash")

LOCK_FILE = "lock.json"
RUN_FILE = "run.json"
STALE_SECONDS = 24 * 3600.0
# The Params whose values decide which rows each process reads, in which order, and at which rate.
STREAM_PARAMS = ("numProc", "seed", "batchSize", "lrSchedule", "readMode", "shuffleBufferRows", "reader")


class RunLock:
    """Holds ``runs/<runId>`` of a store for one fit (a context manager).

    Args:
        run_dir: the run's directory URI (``Store.run_dir``).
        run_id: its name, for messages.

    Raises (on enter):
        RuntimeError: another fit holds the run (naming its host, pid and start time).
    """

    def __init__(self, run_dir: str, run_id: str):
        self.path = fs.join(run_dir, LOCK_FILE)
        self.run_id = run_id
        self.token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"

    def _holder(self) -> dict | None:
        try:
            return json.loads(fs.read_bytes(self.path).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treated as stale below (a torn write of a dead driver)

    def _stale(self, holder: dict) -> bool:
        if not holder:
            return True
        if time.time() - float(holder.get("time", 0)) > STALE_SECONDS:
            return True
        return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1)))

    def __enter__(self) -> RunLock:
        holder = self._holder()
        if holder is not None:
            if not self._stale(holder):
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("time", 0))))
                raise RuntimeError(
                    f"`runId` {self.run_id!r} is in use by another fit (host {holder.get('host')}, pid "
                    f"{holder.get('pid')}, since {started}; lock {self.path}): wait for it to end, or use "
                    "another runId")
            log.warning("taking over the stale lock of run %s (%s)", self.run_id, holder or "unreadable")
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "token": self.token}
        fs.write_bytes(self.path, json.dumps(mine).encode("utf-8"))
        # Two fits that both found the run free: the last write wins, and the other backs off.
        if (self._holder() or {}).get("token") != self.token:
            raise RuntimeError(f"`runId` {self.run_id!r} was taken by another fit at the same moment "
                               f"(lock {self.path}); use another runId")
        return self

    def __exit__(self, *exc) -> None:
        try:
            if (self._holder() or {}).get("token") == self.token:
                fs.remove(self.path)
        except OSError as e:  # never hide the fit's own outcome
            log.warning("could not remove the lock of run %s (%s): %s", self.run_id, self.path, e)


def stream_values(values: dict[str, Any]) -> dict[str, Any]:
    """The values of :data:`STREAM_PARAMS` among a fit's Param values (JSON-comparable)."""
    return {name: json.loads(json.dumps(values.get(name), default=str)) for name in STREAM_PARAMS}


def check_stream(run_dir: str, run_id: str, stream: dict[str, Any]) -> None:
    """Refuses to resume ``run_id`` with a batch stream other than the one it began with; records
    ``stream`` when the run has no record yet.

    Raises:
        ValueError: a Param of :data:`STREAM_PARAMS` differs, naming it and both values.
    """
    path = fs.join(run_dir, RUN_FILE)
    if fs.exists(path):
        try:
            recorded = json.loads(fs.read_bytes(path).decode("utf-8")).get("stream", {})
        except ValueError as e:
            raise ValueError(f"the record of `runId` {run_id!r} ({path}) is damaged ({e}); delete the run's "
                             "directory to start it over, or use another runId") from e
        for name in STREAM_PARAMS:
            if name in recorded and recorded[name] != stream.get(name):
                raise ValueError(
                    f"`{name}` == {stream.get(name)!r}, but run {run_id!r} began with {name}={recorded[name]!r}: "
                    f"resuming would continue on another batch stream; set `{name}` back to "
                    f"{recorded[name]!r}, or use another runId")
        return
    fs.write_bytes(path, json.dumps({"stream": stream}, indent=1, sort_keys=True).encode("utf-8"))
