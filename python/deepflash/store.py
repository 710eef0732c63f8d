"""Where materialized data, checkpoints and saved models live.

A store is a root URI plus a filesystem. Local paths use the OS directly; any other URI
(``hdfs://``, ``s3://``, ``dbfs:/``, ``file://``) goes through fsspec. Everything written
through a store is written to a temporary name first and then renamed, so a reader never sees
half a file or half a directory.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import uuid
from typing import Any
from urllib.parse import urlparse

DATA_DIR = "data"
RUNS_DIR = "runs"
SUCCESS_MARKER = "_DEEPFLASH_SUCCESS"


class Store:
    """A directory tree on some filesystem.

    Args:
        root: a local path or a filesystem URI.
    """

    def __init__(self, root: str):
        if not root:
            raise ValueError("`storePath` == '', must be a local path or a filesystem URI")
        parsed = urlparse(root)
        self._local = parsed.scheme in ("", "file")
        if self._local:
            self.root = os.path.abspath(parsed.path if parsed.scheme == "file" else root)
            self._fs = None
        else:
            import fsspec

            self.root = root.rstrip("/")
            self._fs = fsspec.filesystem(parsed.scheme)

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def __reduce__(self):
        # The root itself, not url(): a local root holding '#' or '?' would not survive the
        # file:// URL round trip (urlparse cuts the path at them).
        return (Store, (self.root,))

    # --- paths -------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        if self._local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts)

    def url(self, *parts: str) -> str:
        """A URI that Spark, pyarrow and Petastorm understand (``file://`` for local paths)."""
        return self.to_url(self.join(*parts))

    def to_url(self, path: str) -> str:
        return "file://" + path if self._local else path

    def dataset_dir(self, key: str) -> str:
        return self.join(DATA_DIR, key)

    def run_dir(self, run_id: str) -> str:
        return self.join(RUNS_DIR, run_id)

    # --- queries -----------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return os.path.exists(path) if self._local else self._fs.exists(path)

    def is_complete(self, directory: str) -> bool:
        """True when ``directory`` was fully written (it holds the success marker)."""
        return self.exists(self.join_path(directory, SUCCESS_MARKER))

    def size(self, path: str) -> int:
        """Total bytes under ``path``."""
        if self._local:
            return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
        return int(self._fs.du(path))

    def listdir(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        if self._local:
            return sorted(os.listdir(path))
        return sorted(posixpath.basename(p.rstrip("/")) for p in self._fs.ls(path, detail=False))

    # --- reads and writes --------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes:
        if self._local:
            with open(path, "rb") as f:
                return f.read()
        with self._fs.open(path, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Writes ``data`` to ``path`` atomically (temporary name, then rename)."""
        parent = self._parent(path)
        self.makedirs(parent)
        tmp = self.join_path(parent, f".tmp-{uuid.uuid4().hex}-{self._basename(path)}")
        if self._local:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            with self._fs.open(tmp, "wb") as f:
                f.write(data)
            if self._fs.exists(path):
                self._fs.rm(path)
            self._fs.mv(tmp, path)

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path).decode("utf-8"))

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def makedirs(self, path: str) -> None:
        if self._local:
            os.makedirs(path, exist_ok=True)
        else:
            self._fs.makedirs(path, exist_ok=True)

    def temp_dir(self, prefix: str) -> str:
        """A fresh sibling-safe temporary directory name under the store root (not created)."""
        return self.join(DATA_DIR, f".tmp-{prefix}-{uuid.uuid4().hex[:12]}")

    def commit_dir(self, tmp: str, final: str) -> None:
        """Marks ``tmp`` complete and renames it to ``final``; a concurrent winner is kept."""
        self.write_bytes(self.join_path(tmp, SUCCESS_MARKER), b"")
        if self.exists(final):
            self.remove(tmp)
            return
        if self._local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
        else:
            self._fs.mv(tmp, final, recursive=True)

    def remove(self, path: str) -> None:
        if not self.exists(path):
            return
        if self._local:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        else:
            self._fs.rm(path, recursive=True)

    def get_dir(self, path: str, local_dir: str) -> None:
        """Copies a store directory to a local directory."""
        if self._local:
            shutil.copytree(path, local_dir, dirs_exist_ok=True)
        else:
            self._fs.get(path.rstrip("/") + "/", local_dir, recursive=True)

    # --- helpers -----------------------------------------------------------------------
    def join_path(self, *parts: str) -> str:
        return os.path.join(*parts) if self._local else posixpath.join(*parts)

    def _parent(self, path: str) -> str:
        return os.path.dirname(path) if self._local else posixpath.dirname(path)

    def _basename(self, path: str) -> str:
        return os.path.basename(path) if self._local else posixpath.basename(path)


def default_store_path(spark) -> str:
    """``<first spark.local.dir>/deepflash`` (the system temp dir when Spark has none set)."""
    local_dirs = spark.sparkContext.getConf().get("spark.local.dir", "") or tempfile.gettempdir()
    return os.path.join(local_dirs.split(",")[0].strip(), "deepflash")
