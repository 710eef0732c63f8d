"""The one filesystem layer: every path deepflash reads or writes goes through here.

Paths are resolved the way Spark resolves them (:func:`qualify`): a path without a scheme means
Hadoop's ``fs.defaultFS`` (``file:`` on a laptop, ``hdfs://`` on a Hadoop cluster), so Spark's own
writers (stage metadata, Parquet) and deepflash's (Keras files, checkpoints, reports) always land
in the same place. ``dbfs:/x`` maps to Databricks' FUSE mount ``/dbfs/x``, which every node of a
Databricks cluster has.

I/O goes through ``pyarrow.fs`` for every scheme alike (``file``, ``hdfs``, ``s3``, ``gs``...).
A file is written atomically: a temporary sibling name, then a rename (:func:`write_bytes`);
directories that appear whole are :mod:`deepflash.io.atomic`. Worker-safe: no Spark import at
module level.
"""
from __future__ import annotations

import functools
import os
import posixpath
import uuid
from urllib.parse import urlparse

# Databricks mounts DBFS here on the driver and every executor. Tests point it elsewhere.
DBFS_ROOT_ENV = "DEEPFLASH_DBFS_ROOT"


def dbfs_root() -> str:
    return os.environ.get(DBFS_ROOT_ENV, "/dbfs")


def scheme_of(path: str) -> str:
    """The URI scheme of ``path`` ('' for a plain path)."""
    parsed = urlparse(path)
    # A one-letter "scheme" is a Windows drive, not a filesystem.
    return parsed.scheme if len(parsed.scheme) > 1 else ""


def _file_uri(local_path: str) -> str:
    return "file://" + os.path.abspath(local_path)


def _normalize(uri: str) -> str:
    """``file:/x`` and ``file:///x`` are the same place; keep the ``file:///x`` form."""
    if uri.startswith("file:") and not uri.startswith("file://"):
        return "file://" + uri[len("file:"):]
    if uri.startswith("file://") and not uri.startswith("file:///"):
        raise ValueError(f"{uri!r}: a file: URI must be file:///absolute/path (no host)")
    return uri.rstrip("/") if uri.rstrip("/") not in ("file:", "file://") else uri


def qualify(path: str, spark=None, *, local: bool = False) -> str:
    """``path`` as a fully qualified URI, resolved as Spark resolves it, without the JVM.

    - ``dbfs:/x`` becomes ``file:///dbfs/x`` (the FUSE mount on every Databricks node);
    - a path with a scheme is kept (``file:/x`` is written ``file:///x``);
    - a path without one is qualified against Hadoop's ``fs.defaultFS``
      (:func:`deepflash.spark.session.default_fs`) by Hadoop's rule: for ``file:`` it becomes an
      absolute local path (a relative one against the working directory); for any other
      filesystem (``hdfs://nn:8020``) an absolute path is kept and a relative one is taken
      against the user's home there, ``/user/<user>``.

    Args:
        path: a path or URI.
        spark: the session whose ``spark.hadoop.fs.defaultFS`` counts (classic or Connect);
            None: the ``core-site.xml`` of this machine (``HADOOP_CONF_DIR``), else ``file:``.
        local: a path without a scheme is a local path whatever Spark says (files that Python
            code writes locally: reports, plots).

    Example:
        >>> qualify("models/m", spark)  # spark.hadoop.fs.defaultFS=hdfs://nn:8020
        'hdfs://nn:8020/user/me/models/m'
    """
    if not path:
        raise ValueError("an empty path: expected a local path or a filesystem URI")
    scheme = scheme_of(path)
    if scheme == "dbfs":
        rest = urlparse(path).path
        return _file_uri(posixpath.join(dbfs_root(), rest.lstrip("/")))
    if scheme:
        return _normalize(path)
    if local:
        return _file_uri(path)
    return against_default_fs(path, default_fs(spark))


def against_default_fs(path: str, default: str) -> str:
    """A path without a scheme on the filesystem ``default`` (an ``fs.defaultFS`` value), as
    Hadoop's ``FileSystem.makeQualified`` makes it (see :func:`qualify`)."""
    base = urlparse(default)
    if base.scheme in ("", "file"):
        return _file_uri(path)
    if not path.startswith("/"):
        path = posixpath.join(hadoop_home(), path)
    return _normalize(f"{base.scheme}://{base.netloc}{posixpath.normpath(path)}")


def hadoop_home() -> str:
    """The user's home directory on a Hadoop filesystem: ``/user/<user>``, the user being
    ``HADOOP_USER_NAME`` where set, else this process's login user (as Hadoop's own client)."""
    import getpass

    return f"/user/{os.environ.get('HADOOP_USER_NAME') or getpass.getuser()}"


def default_fs(spark=None) -> str:
    """Hadoop's ``fs.defaultFS``: :func:`deepflash.spark.session.default_fs`."""
    from deepflash.spark.session import default_fs as session_default_fs

    return session_default_fs(spark)


def is_local(uri: str) -> bool:
    return scheme_of(uri) in ("", "file")


def local_path(uri: str) -> str:
    """The OS path of a ``file:`` URI (or of a plain path). No URL decoding: deepflash's URIs
    carry paths verbatim, so a local name holding ``#``, ``?`` or ``%`` survives."""
    if not is_local(uri):
        raise ValueError(f"{uri!r} is not on the local filesystem")
    if uri.startswith("file://"):
        return uri[len("file://"):] or "/"
    if uri.startswith("file:"):
        return uri[len("file:"):]
    return os.path.abspath(uri)


# Schemes whose paths carry no bucket/authority part on pyarrow's side.
_HADOOP_SCHEMES = ("hdfs", "viewfs")


@functools.lru_cache(maxsize=32)
def _filesystem_for(scheme: str, netloc: str):
    """pyarrow's filesystem for a scheme; fsspec's (wrapped for pyarrow) where pyarrow has none."""
    import pyarrow.fs as pafs

    if scheme in ("", "file"):
        return pafs.LocalFileSystem()
    try:
        fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")
        return fs
    except Exception as arrow_error:  # noqa: BLE001  (pyarrow: unknown scheme, or missing libhdfs...)
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            return PyFileSystem(FSSpecHandler(fsspec.filesystem(scheme)))
        except (ImportError, ValueError):
            raise arrow_error from None


def resolve(uri: str):
    """``(pyarrow FileSystem, path on it)`` for a qualified URI or a plain local path."""
    scheme = scheme_of(uri)
    if scheme in ("", "file"):
        return _filesystem_for("file", ""), local_path(uri)
    parsed = urlparse(uri)
    fs = _filesystem_for(scheme, parsed.netloc)
    if scheme in _HADOOP_SCHEMES:
        return fs, parsed.path or "/"
    return fs, (parsed.netloc + parsed.path).rstrip("/") or "/"


def join(uri: str, *parts: str) -> str:
    return posixpath.join(uri.rstrip("/") if uri.rstrip("/") else uri, *parts)


def parent(uri: str) -> str:
    return posixpath.dirname(uri.rstrip("/"))


def basename(uri: str) -> str:
    return posixpath.basename(uri.rstrip("/"))


# --- queries ---------------------------------------------------------------------------------

def _info(uri: str):
    fs, path = resolve(uri)
    return fs.get_file_info(path)


def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    return _info(uri).type != pafs.FileType.NotFound


def isdir(uri: str) -> bool:
    import pyarrow.fs as pafs

    return _info(uri).type == pafs.FileType.Directory


def listdir(uri: str) -> list[str]:
    """Names directly under ``uri``, sorted ([] when it does not exist)."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)


def size(uri: str) -> int:
    """Total bytes of the files under ``uri`` (or of the file itself)."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return int(info.size)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return int(sum(i.size or 0 for i in infos if i.type == pafs.FileType.File))


# --- reads and writes ------------------------------------------------------------------------

def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def makedirs(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def remove(uri: str) -> None:
    """Deletes a file or a directory tree; a missing path is fine."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type != pafs.FileType.NotFound:
        fs.delete_file(path)


def rename(src: str, dest: str) -> None:
    """Renames ``src`` to a ``dest`` that does not exist yet (same filesystem)."""
    fs, src_path = resolve(src)
    _, dest_path = resolve(dest)
    makedirs(parent(dest))
    fs.move(src_path, dest_path)


def temp_sibling(uri: str, tag: str = "tmp") -> str:
    """A fresh name next to ``uri`` that no one else uses (``.<name>.<tag>-<random>``)."""
    return join(parent(uri), f".{basename(uri)}.{tag}-{uuid.uuid4().hex[:12]}")


def _replace(src: str, dest: str) -> None:
    """Renames ``src`` over ``dest``.

    A local rename replaces ``dest`` atomically. Object stores and HDFS refuse (or nest) a rename
    onto an existing path, so there the old ``dest`` is first renamed aside and deleted only after
    the new one is in place: a crash in between leaves the old copy on disk, never nothing.
    """
    fs, src_path = resolve(src)
    _, dest_path = resolve(dest)
    if is_local(dest):
        os.replace(src_path, dest_path)
        return
    if not exists(dest):
        fs.move(src_path, dest_path)
        return
    aside = temp_sibling(dest, "old")
    fs.move(dest_path, resolve(aside)[1])
    fs.move(src_path, dest_path)
    remove(aside)


def write_bytes(uri: str, data: bytes) -> None:
    """Writes ``data`` to ``uri`` atomically: a reader sees the old file or the new one, whole."""
    makedirs(parent(uri))
    tmp = temp_sibling(uri)
    fs, tmp_path = resolve(tmp)
    try:
        with fs.open_output_stream(tmp_path) as f:
            f.write(data)
        _replace(tmp, uri)
    except BaseException:
        remove(tmp)
        raise


def upload_dir(local_dir: str, uri: str) -> None:
    """Copies a local directory tree to ``uri`` (created if missing)."""
    makedirs(uri)
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        target = uri if rel == "." else join(uri, *rel.split(os.sep))
        makedirs(target)
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            fs, path = resolve(join(target, name))
            with fs.open_output_stream(path) as out:
                out.write(data)


def download_dir(uri: str, local_dir: str) -> None:
    """Copies the tree at ``uri`` into the local directory ``local_dir``."""
    import pyarrow.fs as pafs

    fs, root = resolve(uri)
    os.makedirs(local_dir, exist_ok=True)
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        rel = posixpath.relpath(info.path, root)
        target = os.path.join(local_dir, *rel.split("/"))
        if info.type == pafs.FileType.Directory:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with fs.open_input_stream(info.path) as f, open(target, "wb") as out:
                out.write(f.read())
