"""The entry point of one ``barrier`` rank's own process: ``python -m deepflash.backends.rank_process
PAYLOAD RESULT``. It unpickles ``(fn, args)`` from PAYLOAD, calls it, and pickles a
:class:`~deepflash.backends.stage.RankOutcome` (the value, or the error with its traceback) to RESULT,
through a temporary name and a rename, so that a half-written result is never read.

Before anything else it arms the watches of :mod:`deepflash.backends.watch`: it exits when its
task's Python worker (``DEEPFLASH_PARENT_PID``) is gone, and beats into ``DEEPFLASH_HEARTBEAT``
every second so that its task can tell a hung process from a busy one."""
from __future__ import annotations

import os
import pickle
import sys


def main(payload: str, result: str) -> int:
    from deepflash.backends.watch import Heartbeat, watch_parent

    parent = os.environ.get("DEEPFLASH_PARENT_PID")
    if parent:
        watch_parent(int(parent))
    if os.environ.get("DEEPFLASH_HEARTBEAT"):
        Heartbeat(os.environ["DEEPFLASH_HEARTBEAT"]).start()

    from deepflash.backends.stage import RankOutcome

    rank = int(os.environ.get("DEEPFLASH_RANK", "0"))
    try:
        with open(payload, "rb") as f:
            fn, args = pickle.load(f)
        outcome = RankOutcome(rank=rank, value=fn(*args))
    except BaseException as e:  # noqa: BLE001  (reported to the driver)
        outcome = RankOutcome.failure(rank, e)
    partial = result + ".partial"
    with open(partial, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(partial, result)
    sys.stderr.flush()
    # TensorFlow's collective threads can keep a finished process alive; the result is written.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
