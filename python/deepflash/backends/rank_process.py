"""The entry point of one ``barrier`` rank's own process: ``python -m deepflash.backends.rank_process
FOLDER`` (see :mod:`deepflash.backends.rank_launch` for the files in FOLDER).

Before anything else it arms the watches of :mod:`deepflash.backends.watch`: it exits when its
task's Python worker (``DEEPFLASH_PARENT_PID``) is gone, and beats into ``DEEPFLASH_HEARTBEAT``
every second so that its task can tell a hung process from a busy one. Then it imports the training
loop and the framework, and waits for its payload ``(fn, args, env)``: written at once for a fresh
rank, later for a warm spare, which exits after ``DEEPFLASH_SPARE_IDLE_S`` seconds without one. It
adds ``env`` to its environment, calls ``fn(*args)`` and pickles a
:class:`~deepflash.backends.stage.RankOutcome` (the value, or the error with its traceback) to
``result.pkl``, through a temporary name and a rename, so that a half-written result is never read.
"""
from __future__ import annotations

import os
import pickle
import sys
import time

_POLL_S = 0.02


def _preload() -> None:
    """What every rank imports, done while the process waits (a spare) or its task sets up."""
    try:
        import keras  # noqa: F401  (on KERAS_BACKEND: torch or jax, where the rank trains on those)
        import tensorflow  # noqa: F401  (the tf.data reader, and Keras's framework by default)

        import deepflash.worker.loop  # noqa: F401
    except Exception:  # noqa: BLE001  (the rank itself reports what fails to import)
        pass


def _wait_for_payload(folder: str, idle_s: float) -> str | None:
    path = os.path.join(folder, "payload.pkl")
    deadline = time.time() + idle_s
    while not os.path.exists(path):
        if time.time() > deadline:
            try:  # no task took this spare: make sure none does, then leave no trace
                os.close(os.open(os.path.join(folder, "claimed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except OSError:
                deadline = time.time() + idle_s  # claimed just now: its payload is on its way
                continue
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            return None
        time.sleep(_POLL_S)
    return path


def main(folder: str) -> int:
    from deepflash.backends.watch import Heartbeat, watch_parent

    parent = os.environ.get("DEEPFLASH_PARENT_PID")
    if parent:
        watch_parent(int(parent))
    if os.environ.get("DEEPFLASH_HEARTBEAT"):
        Heartbeat(os.environ["DEEPFLASH_HEARTBEAT"]).start()
    _preload()
    payload = _wait_for_payload(folder, float(os.environ.get("DEEPFLASH_SPARE_IDLE_S", "120")))
    if payload is None:
        os._exit(0)

    from deepflash.backends.stage import RankOutcome

    rank = 0
    try:
        with open(payload, "rb") as f:
            fn, args, env = pickle.load(f)
        os.environ.update(env)
        rank = int(os.environ.get("DEEPFLASH_RANK", "0"))
        outcome = RankOutcome(rank=rank, value=fn(*args))
    except BaseException as e:  # noqa: BLE001  (reported to the driver)
        outcome = RankOutcome.failure(rank, e)
    from deepflash.io import fs

    fs.write_bytes(os.path.join(folder, "result.pkl"), pickle.dumps(outcome))
    sys.stderr.flush()
    # TensorFlow's collective threads can keep a finished process alive; the result is written.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
