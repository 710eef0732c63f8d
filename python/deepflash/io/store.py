"""Where materialized data, checkpoints and run files live.

A store is a root URI on some filesystem; all of its I/O goes through :mod:`deepflash.io.fs`, so a
local directory, ``hdfs://``, ``s3://`` and ``dbfs:/`` behave alike. The root is qualified the
way Spark qualifies paths (a path without a scheme means ``fs.defaultFS``) when the store is
made on the driver, and travels to the workers as that full URI.

On a cluster every executor must reach the store: :func:`check_reachable` proves it with a probe
file before anything is written.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
import uuid
from typing import Any

from deepflash.io import atomic, fs
from deepflash.processes import pid_alive
from deepflash.spark import session
from deepflash.spark.slots import count_slots
from deepflash.spark.tasks import run_tasks

log = logging.getLogger("deepflash")

DATA_DIR = "data"
STALE_TEMP_SECONDS = 24 * 3600.0
_TEMP_NAME = re.compile(r"-pid(\d+)-([0-9a-f]{8})-[0-9a-f]{12}$")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


RUNS_DIR = "runs"
PROBE_DIR = "_probe"


class Store:
    """A directory tree on some filesystem.

    Args:
        root: a path or a filesystem URI; qualified with :func:`deepflash.io.fs.qualify`.
        spark: the session whose ``fs.defaultFS`` a root without a scheme is on (None: this
            machine's Hadoop configuration, else a local path).

    Example:
        >>> store = Store("hdfs://nn:8020/user/me/deepflash")
        >>> store.write_json(store.join("runs", "r1", "meta.json"), {"epochs": 3})
    """

    def __init__(self, root: str, spark=None):
        if not root:
            raise ValueError("`storePath` == '', must be a path or a filesystem URI")
        self.root = fs.qualify(root, spark)

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def __reduce__(self):
        return (Store, (self.root,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # --- paths -------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        """The URI of ``parts`` under the root."""
        return fs.join(self.root, *parts)

    url = join  # every path of a store is already a URI that Spark, pyarrow and Petastorm read

    @staticmethod
    def join_path(*parts: str) -> str:
        return fs.join(*parts)

    def dataset_dir(self, key: str) -> str:
        return self.join(DATA_DIR, key)

    def run_dir(self, run_id: str) -> str:
        return self.join(RUNS_DIR, run_id)

    def temp_dir(self, prefix: str) -> str:
        """A fresh temporary directory name under the store's data dir (not created); it names the
        host and process writing it, so that :meth:`sweep_temp` knows when its writer is gone."""
        return self.join(DATA_DIR, f".tmp-{prefix}-pid{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex[:12]}")

    def sweep_temp(self) -> list[str]:
        """Removes the temporary directories of the data dir that a crashed fit left: those whose
        writer ran on this host and is gone, and any older than :data:`STALE_TEMP_SECONDS`.
        Returns the names removed (a failure to remove one is logged, never raised)."""
        import pyarrow.fs as pafs

        filesystem, path = fs.resolve(self.join(DATA_DIR))
        try:
            infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except OSError:
            return []
        removed = []
        for info in infos:
            match = _TEMP_NAME.search(info.base_name) if info.base_name.startswith(".tmp-") else None
            if match is None:
                continue
            pid, host = int(match.group(1)), match.group(2)
            age = time.time() - info.mtime.timestamp() if info.mtime is not None else 0.0
            if not ((host == _host_tag() and not pid_alive(pid)) or age > STALE_TEMP_SECONDS):
                continue
            try:
                fs.remove(self.join(DATA_DIR, info.base_name))
                removed.append(info.base_name)
            except OSError as e:
                log.warning("could not remove the stale temporary directory %s: %s", info.base_name, e)
        if removed:
            log.info("removed %d temporary director%s that an earlier fit left in %s", len(removed),
                     "y" if len(removed) == 1 else "ies", self.join(DATA_DIR))
        return removed

    # --- I/O (thin: the filesystem layer does the work) --------------------------------
    exists = staticmethod(fs.exists)
    is_complete = staticmethod(atomic.is_complete)
    size = staticmethod(fs.size)
    listdir = staticmethod(fs.listdir)
    read_bytes = staticmethod(fs.read_bytes)
    write_bytes = staticmethod(fs.write_bytes)
    makedirs = staticmethod(fs.makedirs)
    remove = staticmethod(fs.remove)
    commit_dir = staticmethod(atomic.commit_dir)

    @staticmethod
    def read_json(path: str) -> Any:
        return json.loads(fs.read_bytes(path).decode("utf-8"))

    @staticmethod
    def write_json(path: str, obj: Any) -> None:
        fs.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def get_dir(self, path: str, local_dir: str) -> None:
        """Copies a store directory to a local directory."""
        fs.download_dir(path, local_dir)


def default_store_path(spark) -> str:
    """The store used when ``storePath`` is not set.

    With a distributed ``fs.defaultFS`` (HDFS, S3...) it is ``deepflash`` under the user's home
    there (``/user/<user>``), which every node reaches. Otherwise it is ``<first
    spark.local.dir>/deepflash-store-<user>`` on the driver, private to the user (mode 0700; one
    owned by someone else, or open to others, is refused), which executors on other machines
    cannot see: on such a cluster :func:`check_reachable` refuses it, and ``storePath`` must name
    shared storage.
    """
    default = fs.default_fs(spark)
    if not fs.is_local(default):
        return fs.against_default_fs("deepflash", default)
    local_dirs = session.conf(spark, "spark.local.dir") or tempfile.gettempdir()
    path = os.path.join(local_dirs.split(",")[0].strip(), f"deepflash-store-{getpass.getuser()}")
    private_dir(path)
    return fs.qualify(path, local=True)


def private_dir(path: str) -> None:
    """Creates ``path`` (mode 0700) or checks that it is this user's and closed to others.

    Raises:
        PermissionError: it belongs to another user, or others can read or write it.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.getuid():
        raise PermissionError(f"the default store {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): "
                              "its data could have been planted; set `storePath` to a directory of your own")
    if st.st_mode & 0o077:
        raise PermissionError(f"the default store {path} has mode {oct(st.st_mode & 0o777)}, open to other users; "
                              f"expected 0o700 (`chmod 700 {path}`), or set `storePath`")


def _probe_task(uri: str):
    """Runs on an executor: does it see the driver's probe file? -> (host, seen, error)."""
    import socket

    try:
        from deepflash.io import fs as worker_fs

        return socket.gethostname(), os.getpid(), worker_fs.exists(uri), ""
    except Exception as e:  # noqa: BLE001  (any failure to reach the store is the answer)
        return socket.gethostname(), os.getpid(), False, f"{type(e).__name__}: {e}"


def check_reachable(store: Store, spark, *, is_default: bool) -> None:
    """Raises ValueError naming ``storePath`` when executors cannot reach ``store``.

    On a ``local`` master the driver's disk is the executors' disk and nothing is checked.
    Elsewhere the driver writes a probe file and one task per executor slot looks for it:
    a real check, not a guess from the scheme (an NFS ``file:`` path works, ``/tmp`` does not).
    """
    if session.is_local_master(spark):
        return
    started = time.time()
    what = (f"`storePath` is not set, and its default {store.root!r} (under the driver's "
            "spark.local.dir)" if is_default else f"`storePath` == {store.root!r}")
    probe = store.join(PROBE_DIR, f"{uuid.uuid4().hex}.probe")
    try:
        fs.write_bytes(probe, b"deepflash store probe")
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what}: the driver cannot write to it ({type(e).__name__}: {e})") from None
    try:
        slots = max(1, count_slots(spark).total)
        seen = run_tasks(spark, _probe_task, [probe] * slots)
    except Exception as e:  # noqa: BLE001  (Spark wraps the executor's error)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what}: could not check it from the executors, the probe task failed: {first}; "
                         "executors need deepflash and pyarrow installed") from e
    finally:
        fs.remove(probe)
    blind = [s for s in seen if not s[2]]
    if blind:
        host, _, _, error = blind[0]
        detail = f" ({error})" if error else ""
        raise ValueError(
            f"{what}: executors cannot reach it: a probe file written there by the driver was not found by "
            f"{len(blind)} of {len(seen)} executor tasks (first on host {host}{detail}). On a cluster the store "
            "must be shared storage that the driver and every executor see: set storePath to an hdfs://, "
            "s3://, gs:// or dbfs:/ URI, or to a path on a shared mount such as NFS")
    log.info("store %s is reachable from %d executor task(s) (checked in %.1fs)", store.root, len(seen),
             time.time() - started)
