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
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
