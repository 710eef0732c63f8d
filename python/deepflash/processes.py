"""Facts about processes of this host that fault handling needs (no deepflash imports)."""
from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return True


def parent_pid(pid: int) -> int:
    """The parent of process ``pid`` of this host (OSError when it is gone)."""
    return int(_stat(pid)[1])


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state, parent pid, ..."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
