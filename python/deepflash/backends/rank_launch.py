"""A training rank's own process, started fresh or taken warm.

A rank's process spends most of its start importing: Python, deepflash's training loop and the
framework (TensorFlow alone takes about 4 s on this project's 2-core machine). So when a rank
succeeds, its task starts the next rank's process at once, as a *warm spare*: it imports all that,
then waits for a payload. The next barrier task that Spark runs in the same Python worker claims
it, where its start environment matches, instead of starting a process: search trials and the
fits of a notebook skip the imports. (Spark reuses an executor's Python workers; an executor of
one core has one. Where it has several, a task may land in a worker without a spare, and starts a
process as before.)

A spare is bounded like a rank, and is the child of the Python worker that will run its rank:

- it exits when that Python worker is gone (the kernel's parent-death signal, and a poll), and
  Spark stops Python workers that sit idle for a minute;
- it exits by itself after :data:`SPARE_IDLE_S` seconds without a payload, removing its folder;
- it beats into its heartbeat file, and a claim takes no spare whose beats stopped;
- its claimant kills its group when the rank ends, as for a fresh process.

``DEEPFLASH_WARM_RANKS=0`` (in the driver's environment, which the ranks' tasks receive) turns
spares off.

Files of one process (a private directory, :func:`~deepflash.backends.watch.payload_dir`):
``payload.pkl`` (``(fn, args, env)``) and ``result.pkl`` (both written by :func:`deepflash.io.fs.write_bytes`),
``alive`` (the heartbeat), ``stderr`` (the process's stderr, which its task forwards), and for a
spare ``key`` (what its start environment was) and ``claimed`` (made by whoever takes it: its
rank's task, or the spare itself as it leaves).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time

from deepflash.backends.watch import BEAT_SECONDS, Heartbeat, payload_dir
from deepflash.io import fs

WARM_ENV = "DEEPFLASH_WARM_RANKS"
SPARE_IDLE_ENV = "DEEPFLASH_SPARE_IDLE_S"
SPARE_IDLE_S = 120.0
# A spare whose last beat is older than this is not claimed (stopped, or about to exit).
FRESH_BEAT_S = 2.0
# Variables a process reads when its rank starts (from the payload), not when it starts: a spare
# started with other values of them still serves.
RUN_TIME_PREFIXES = ("DEEPFLASH_",)
RUN_TIME_NAMES = ("TF_CONFIG",)
_POLL_S = 0.05


def warm_enabled(env: dict[str, str] | None = None) -> bool:
    """Whether ranks keep a warm spare (``DEEPFLASH_WARM_RANKS``, on unless ``0``/``false``)."""
    value = (env if env is not None else os.environ).get(WARM_ENV, "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


def split_env(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``env`` as (what the process must start with, what it may receive when its rank starts)."""
    start = {k: v for k, v in env.items() if not (k.startswith(RUN_TIME_PREFIXES) or k in RUN_TIME_NAMES)}
    return start, {k: v for k, v in env.items() if k not in start}


def start_key(start_env: dict[str, str]) -> str:
    """What makes two processes interchangeable: the interpreter, the import path and the start
    variables (``KERAS_BACKEND``, ``CUDA_VISIBLE_DEVICES``, ...)."""
    what = {"python": sys.executable, "path": [p for p in sys.path if p], "env": sorted(start_env.items())}
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


class RankProcess:
    """One rank's process, a child of this Python worker: started now (:meth:`spawn`) or a spare
    started earlier and taken now (:meth:`claim`)."""

    def __init__(self, folder: str, proc: subprocess.Popen, key: str = ""):
        self.folder, self.proc, self.pid, self.key = folder, proc, proc.pid, key
        self.started = time.time()
        self.heartbeat = Heartbeat(self.path("alive"))

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    @classmethod
    def spawn(cls, start_env: dict[str, str], spare: bool = False) -> RankProcess:
        """Starts a process with ``start_env`` added to this one's environment. A ``spare`` is
        kept for :meth:`claim` (and its ``key`` file says what it is)."""
        folder = payload_dir()
        env = {**os.environ, **start_env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "DEEPFLASH_PARENT_PID": str(os.getpid()), "DEEPFLASH_HEARTBEAT": os.path.join(folder, "alive"),
               SPARE_IDLE_ENV: os.environ.get(SPARE_IDLE_ENV, str(SPARE_IDLE_S))}
        with open(os.path.join(folder, "stderr"), "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "deepflash.backends.rank_process", folder], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        started = cls(folder, proc, start_key(start_env) if spare else "")
        if spare:
            _forget_ended_spares()
            _spares.append(started)
            fs.write_bytes(started.path("key"), json.dumps({"key": started.key, "pid": proc.pid}).encode())
        return started

    @classmethod
    def claim(cls, start_env: dict[str, str]) -> RankProcess | None:
        """A live spare that this Python worker started, whose start matches ``start_env``, now
        taken; None if there is none."""
        _forget_ended_spares()
        key = start_key(start_env)
        for spare in list(_spares):
            beat = spare.path("alive")
            # A spare that has not beaten yet is starting; one whose beats stopped is stopped or leaving.
            if spare.key != key or (os.path.exists(beat) and spare.heartbeat.age(0) > FRESH_BEAT_S):
                continue
            _spares.remove(spare)
            try:  # the spare itself makes this file when it leaves, idle: then it is not to be had
                os.close(os.open(spare.path("claimed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except OSError:
                continue
            return spare
        return None

    def start(self, fn, args: tuple, run_env: dict[str, str]) -> None:
        """Hands the process its rank: ``fn(*args)`` with ``run_env`` added."""
        from pyspark import cloudpickle

        fs.write_bytes(self.path("payload.pkl"), cloudpickle.dumps((fn, args, run_env)))
        self.started = time.time()

    def done(self) -> bool:
        """Whether the process wrote its result."""
        return os.path.exists(self.path("result.pkl"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit status; None while the process runs."""
        return self.proc.poll()

    def result(self):
        with open(self.path("result.pkl"), "rb") as f:
            return pickle.load(f)

    def kill(self) -> None:
        """Kills the process and its group (what it started), and reaps it (bounded)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=BEAT_SECONDS * 10)
        except subprocess.TimeoutExpired:
            pass

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# The spares this Python worker started and has not handed out.
_spares: list[RankProcess] = []


def _forget_ended_spares() -> None:
    """Drops (and reaps) the spares that have exited: idle too long, or killed."""
    _spares[:] = [spare for spare in _spares if spare.alive()]


class StderrForwarder:
    """Copies a process's stderr file to this process's stderr as it grows, keeping its last lines."""

    def __init__(self, path: str, keep: int):
        import collections

        self.path, self.tail = path, collections.deque(maxlen=keep)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepflash-rank-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            f = open(self.path, errors="replace")
        except OSError:
            return
        with f:
            partial = ""
            while True:
                chunk = f.read()
                if chunk:
                    lines = (partial + chunk).split("\n")
                    partial = lines.pop()
                    for line in lines:
                        self.tail.append(line + "\n")
                        sys.stderr.write(line + "\n")
                    sys.stderr.flush()
                elif self._stop.is_set():
                    if partial:
                        self.tail.append(partial)
                        sys.stderr.write(partial + "\n")
                    return
                else:
                    time.sleep(_POLL_S * 2)

    def close(self) -> str:
        """Stops after copying what is there; returns the last lines."""
        self._stop.set()
        self._thread.join(timeout=BEAT_SECONDS * 5)
        return "".join(self.tail)
