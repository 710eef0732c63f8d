"""Directories that appear whole, or not at all.

:func:`atomic_dir` stages a job's output in a temporary sibling and renames it into place when
the block succeeds; :func:`commit_dir` marks a finished directory (materialized data, a run's
files) with :data:`SUCCESS_MARKER` and renames it into place, so two writers of the same
directory never merge and a reader tells a complete one by :func:`is_complete`. All I/O goes
through :mod:`deepflash.io.fs`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from deepflash.io.fs import (
    basename,
    exists,
    is_local,
    join,
    local_path,
    makedirs,
    parent,
    remove,
    resolve,
    temp_sibling,
    upload_dir,
    write_bytes,
)

SUCCESS_MARKER = "_DEEPFLASH_SUCCESS"


def is_complete(uri: str) -> bool:
    """True when the directory ``uri`` was committed by :func:`commit_dir`."""
    return exists(join(uri, SUCCESS_MARKER))


def commit_dir(tmp: str, final: str) -> bool:
    """Marks ``tmp`` complete and renames it to ``final``.

    Two writers may commit the same ``final`` at once (two fits of one dataset): the first rename
    wins, the loser's copy is dropped and both return normally. Returns True when this call's
    copy is the one in place.

    A local rename moves the whole tree at once, so the marker goes in first. An object store
    "renames" a directory file by file, so there the marker is written after the move, into
    ``final``: a reader never finds it beside part files that are still being copied.
    """
    local = is_local(final)
    if local:
        write_bytes(join(tmp, SUCCESS_MARKER), b"")
    makedirs(parent(final))
    fs, tmp_path = resolve(tmp)
    _, final_path = resolve(final)
    if not exists(final):
        try:
            if local:
                os.rename(tmp_path, final_path)  # fails on a non-empty final: never merges
            else:
                fs.move(tmp_path, final_path)
            if exists(join(final, basename(tmp))):  # a store that nests a rename onto a directory
                remove(join(final, basename(tmp)))
                return False
            if not local:
                write_bytes(join(final, SUCCESS_MARKER), b"")
            return True
        except OSError:
            pass
    if is_complete(final):
        remove(tmp)
        return False
    raise FileExistsError(f"{final} exists but is incomplete (no {SUCCESS_MARKER}); remove it and run again")


@dataclass
class Staging:
    """Where an :func:`atomic_dir` block writes: ``uri`` for Spark writers and pyarrow, ``local``
    for Python file APIs (matplotlib, json, open). On a local target they are the same directory;
    on a remote one ``local`` is uploaded into ``uri`` before the rename."""

    uri: str
    local: str

    def local_path(self, *parts: str) -> str:
        path = os.path.join(self.local, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def join(self, *parts: str) -> str:
        return join(self.uri, *parts)


def check_writable_target(final: str, overwrite: bool, what: str = "output") -> None:
    """Raises before any work when ``final`` exists and may not be replaced."""
    if exists(final) and not overwrite:
        raise FileExistsError(f"{what} {final} exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_dir(final: str, overwrite: bool = False, what: str = "output") -> Iterator[Staging]:
    """Yields a :class:`Staging` directory that becomes ``final`` only when the block succeeds.

    An existing ``final`` is refused unless ``overwrite``; with it, the old tree is renamed aside
    and deleted after the new one is in place. On failure nothing at ``final`` changes and the
    temporary directory is removed.
    """
    check_writable_target(final, overwrite, what)
    makedirs(parent(final))
    tmp = temp_sibling(final)
    makedirs(tmp)
    local_scratch = None if is_local(tmp) else tempfile.mkdtemp(prefix="deepflash-staging-")
    staging = Staging(tmp, local_path(tmp) if local_scratch is None else local_scratch)
    try:
        yield staging
        if local_scratch is not None:
            upload_dir(local_scratch, tmp)
        if exists(final):
            check_writable_target(final, overwrite, what)
            aside = temp_sibling(final, "old")
            fs, final_path = resolve(final)
            fs.move(final_path, resolve(aside)[1])
            fs.move(resolve(tmp)[1], final_path)
            remove(aside)
        else:
            fs, final_path = resolve(final)
            fs.move(resolve(tmp)[1], final_path)
    finally:
        if exists(tmp):
            remove(tmp)
        if local_scratch is not None:
            shutil.rmtree(local_scratch, ignore_errors=True)
