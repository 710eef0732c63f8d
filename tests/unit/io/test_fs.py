"""The filesystem layer (io/fs.py), directories that appear whole (io/atomic.py) and the Store on top of
them: paths, atomic writes, commits."""
from __future__ import annotations

import os
import pickle
import threading
import time
import uuid

import pytest

from deepflash.io import atomic, fs
from deepflash.io.atomic import SUCCESS_MARKER
from deepflash.io.store import Store
from helpers import ConfSession


def _no_temp_files(root) -> bool:
    return not [n for _, dirs, files in os.walk(root) for n in dirs + files if ".tmp-" in n or ".old-" in n]


# --- qualify: Spark's rule, without a SparkContext (workers, before Spark starts) --------------



@pytest.fixture
def no_hadoop_conf(monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)


def test_plain_paths_without_spark_are_local_uris(tmp_path, monkeypatch, no_hadoop_conf):
    monkeypatch.chdir(tmp_path)
    assert fs.qualify("/data/x") == "file:///data/x"
    assert fs.qualify("rel/x") == f"file://{tmp_path}/rel/x"
    assert fs.qualify("file:/data/x") == "file:///data/x"
    assert fs.qualify("file:///data/x/") == "file:///data/x"
    assert fs.qualify("hdfs://nn:8020/user/me/store") == "hdfs://nn:8020/user/me/store"
    assert fs.qualify("s3://bucket/key") == "s3://bucket/key"


def test_plain_paths_follow_the_sessions_hdfs_default_fs(tmp_path, monkeypatch, no_hadoop_conf):
    monkeypatch.setenv("HADOOP_USER_NAME", "ana")
    monkeypatch.chdir(tmp_path)
    spark = ConfSession({"spark.hadoop.fs.defaultFS": "hdfs://nn:8020"})
    assert fs.qualify("/models/m", spark) == "hdfs://nn:8020/models/m"
    assert fs.qualify("models/m", spark) == "hdfs://nn:8020/user/ana/models/m"
    assert fs.qualify("models/../m/", spark) == "hdfs://nn:8020/user/ana/m"
    assert fs.qualify("file:/models/m", spark) == "file:///models/m"
    assert fs.qualify("s3://b/k", spark) == "s3://b/k"
    # local=True: a file Python writes locally, whatever the default filesystem
    assert fs.qualify("models/m", spark, local=True) == f"file://{tmp_path}/models/m"
    # a session on the local filesystem: relative paths against the working directory
    local = ConfSession({"spark.hadoop.fs.defaultFS": "file:///"})
    assert fs.qualify("models/m", local) == f"file://{tmp_path}/models/m"
    assert fs.default_fs(spark) == "hdfs://nn:8020"


def test_without_a_session_core_site_xml_names_the_default_fs(tmp_path, monkeypatch, no_hadoop_conf):
    monkeypatch.setenv("HADOOP_USER_NAME", "ana")
    (tmp_path / "core-site.xml").write_text(
        "<configuration><property><name>fs.defaultFS</name><value>hdfs://site:9000</value></property>"
        "</configuration>")
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    assert fs.qualify("x/y") == "hdfs://site:9000/user/ana/x/y"
    # the session's own setting comes first
    assert fs.qualify("/x", ConfSession({"spark.hadoop.fs.defaultFS": "hdfs://nn:8020"})) == "hdfs://nn:8020/x"
    # a session that leaves it unset falls back to core-site.xml, never to an active session
    assert fs.qualify("/x", ConfSession({})) == "hdfs://site:9000/x"


def test_dbfs_maps_to_the_fuse_mount(monkeypatch, tmp_path):
    monkeypatch.delenv(fs.DBFS_ROOT_ENV, raising=False)
    assert fs.qualify("dbfs:/ml/store") == "file:///dbfs/ml/store"
    monkeypatch.setenv(fs.DBFS_ROOT_ENV, str(tmp_path))
    assert fs.qualify("dbfs:/ml/store") == f"file://{tmp_path}/ml/store"


def test_bad_paths_are_refused():
    with pytest.raises(ValueError, match="empty path"):
        fs.qualify("")
    with pytest.raises(ValueError, match="file:///absolute/path"):
        fs.qualify("file://host/x")
    with pytest.raises(ValueError, match="`storePath` == ''"):
        Store("")


# --- the Store -------------------------------------------------------------------------------

def test_store_paths_are_uris(tmp_path):
    store = Store(str(tmp_path / "s"))
    root = f"file://{tmp_path}/s"
    assert store.root == root and repr(store) == f"Store({root!r})"
    assert store.join("a", "b") == root + "/a/b" == store.url("a", "b")
    assert store.dataset_dir("k") == store.join("data", "k")
    assert store.run_dir("r") == store.join("runs", "r")
    assert Store("file://" + str(tmp_path)) == Store(str(tmp_path))


def test_write_and_read_bytes_atomically(tmp_path):
    store = Store(str(tmp_path))
    path = store.join("deep", "er", "blob.bin")
    store.write_bytes(path, b"\x00first")
    assert store.read_bytes(path) == b"\x00first"
    store.write_bytes(path, b"second")
    assert store.read_bytes(path) == b"second"
    assert store.listdir(store.join("deep", "er")) == ["blob.bin"]
    assert store.size(store.join("deep")) == len(b"second")
    assert _no_temp_files(tmp_path)


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = fs.join(fs.qualify(str(tmp_path)), "ckpt.npz")
    fs.write_bytes(path, b"epoch 2")

    def crash(src, dest):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        fs.write_bytes(path, b"epoch 3")
    monkeypatch.undo()
    assert fs.read_bytes(path) == b"epoch 2"
    assert _no_temp_files(tmp_path)


def test_write_and_read_json_sorted(tmp_path):
    store = Store(str(tmp_path))
    obj = {"b": [1, 2.5, None], "a": {"nested": "é"}}
    store.write_json(store.join("meta.json"), obj)
    assert store.read_json(store.join("meta.json")) == obj
    text = (tmp_path / "meta.json").read_text(encoding="utf-8")
    assert text.index('"a"') < text.index('"b"')


def test_commit_dir_marks_and_renames(tmp_path):
    store = Store(str(tmp_path))
    tmp = store.temp_dir("key")
    assert fs.basename(tmp).startswith(".tmp-key-") and not store.exists(tmp)
    store.write_bytes(fs.join(tmp, "part-0.parquet"), b"rows")
    final = store.dataset_dir("key")
    assert not store.is_complete(final)
    assert store.commit_dir(tmp, final) is True
    assert store.is_complete(final) and not store.exists(tmp)
    assert store.listdir(final) == sorted([SUCCESS_MARKER, "part-0.parquet"])
    assert store.listdir(store.join("data")) == ["key"]


def _commit_together(store, tmps, final) -> tuple[list, list]:
    """Commits every directory of ``tmps`` to ``final``, one thread each, released together by a
    barrier; returns ``(index, won)`` per commit that returned and the errors of those that raised."""
    barrier = threading.Barrier(len(tmps))
    won, errors = [], []

    def commit(i):
        barrier.wait()
        try:
            won.append((i, store.commit_dir(tmps[i], final)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(len(tmps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, errors


def test_concurrent_commits_of_one_dataset_race_and_both_succeed(tmp_path):
    """Eight writers commit the same key at the same instant (a barrier releases them together):
    every call returns, exactly one copy wins whole, and no temporary directory is left."""
    for attempt in range(5):
        store = Store(str(tmp_path / f"s{attempt}"))
        final = store.dataset_dir("key")
        writers = 8
        tmps = [store.temp_dir("key") for _ in range(writers)]
        for i, tmp in enumerate(tmps):
            store.write_bytes(fs.join(tmp, f"part-{i}"), str(i).encode())
        won, errors = _commit_together(store, tmps, final)
        assert errors == []
        winners = [i for i, w in won if w]
        assert len(won) == writers and len(winners) == 1
        assert store.listdir(final) == sorted([SUCCESS_MARKER, f"part-{winners[0]}"])
        assert store.listdir(store.join("data")) == ["key"]


def test_an_incomplete_final_directory_is_not_taken_for_complete(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes(store.join("data", "key", "part-0"), b"half")
    tmp = store.temp_dir("key")
    store.write_bytes(fs.join(tmp, "part-0"), b"whole")
    with pytest.raises(FileExistsError, match="incomplete"):
        store.commit_dir(tmp, store.dataset_dir("key"))


def test_remove_files_and_dirs(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes(store.join("d", "f1"), b"1")
    store.write_bytes(store.join("g"), b"2")
    store.remove(store.join("g"))
    store.remove(store.join("d"))
    store.remove(store.join("never-there"))
    assert not store.exists(store.join("g")) and not store.exists(store.join("d"))
    assert store.listdir(store.join("d")) == []


def test_get_dir_copies_to_local(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_bytes(store.join("run", "ckpt", "w.bin"), b"weights")
    store.get_dir(store.join("run"), str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "ckpt" / "w.bin").read_bytes() == b"weights"


@pytest.mark.parametrize("name", ["plain", "with space", "odd#name?x=1", "per%20cent"])
def test_store_pickles_and_keeps_odd_names(tmp_path, name):
    store = Store(str(tmp_path / name))
    store.write_bytes(store.join("f"), b"data")
    assert (tmp_path / name / "f").read_bytes() == b"data"
    clone = pickle.loads(pickle.dumps(store))
    assert clone == store and clone is not store
    assert clone.read_bytes(clone.join("f")) == b"data"


# --- a non-local filesystem: renames that do not replace (fsspec's memory filesystem) --------

def test_remote_store_round_trip_replaces_by_renaming_aside():
    store = Store(f"memory://deepflash-test-{uuid.uuid4().hex}")
    path = store.join("a", "b.json")
    store.write_json(path, {"x": 1})
    store.write_json(path, {"x": 2})
    assert store.read_json(path) == {"x": 2}
    assert store.listdir(store.join("a")) == ["b.json"]  # no temporary or set-aside copy left
    tmp, final = store.temp_dir("k"), store.dataset_dir("k")
    store.write_bytes(fs.join(tmp, "part"), b"p")
    store.commit_dir(tmp, final)
    assert store.is_complete(final) and not store.exists(tmp)
    loser = store.temp_dir("k")
    store.write_bytes(fs.join(loser, "other"), b"q")
    assert store.commit_dir(loser, final) is False
    assert store.listdir(final) == sorted([SUCCESS_MARKER, "part"])
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_json(path) == {"x": 2}


def test_on_an_object_store_the_success_marker_is_written_after_the_part_files_are_in_place(monkeypatch):
    store = Store(f"memory://deepflash-test-{uuid.uuid4().hex}")
    tmp, final = store.temp_dir("k"), store.dataset_dir("k")
    for name in ("part-0", "part-1"):
        store.write_bytes(fs.join(tmp, name), b"p")
    seen = []
    real = atomic.write_bytes

    def spy(uri, data):
        if uri.endswith(SUCCESS_MARKER):
            seen.append((uri, [store.exists(fs.join(final, n)) for n in ("part-0", "part-1")]))
        real(uri, data)

    monkeypatch.setattr(atomic, "write_bytes", spy)
    assert store.commit_dir(tmp, final) is True
    assert seen == [(fs.join(final, SUCCESS_MARKER), [True, True])]
    assert store.is_complete(final)


# --- atomic_dir: job outputs appear whole or not at all ---------------------------------------

def test_atomic_dir_appears_only_on_success(tmp_path):
    final = fs.qualify(str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_dir(final) as out:
            with open(out.local_path("metrics.json"), "w") as f:
                f.write("{}")
            raise RuntimeError("boom")
    assert not fs.exists(final) and _no_temp_files(tmp_path)
    with atomic.atomic_dir(final) as out:
        with open(out.local_path("plots", "a.png"), "wb") as f:
            f.write(b"png")
    assert (tmp_path / "out" / "plots" / "a.png").read_bytes() == b"png"


def test_atomic_dir_refuses_an_existing_output_unless_overwrite(tmp_path):
    final = fs.qualify(str(tmp_path / "out"))
    fs.write_bytes(fs.join(final, "old.txt"), b"old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic.atomic_dir(final):
            pytest.fail("the block must not run")
    with atomic.atomic_dir(final, overwrite=True) as out:
        with open(out.local_path("new.txt"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(tmp_path / "out")) == ["new.txt"]
    assert _no_temp_files(tmp_path)


def test_atomic_dir_on_a_remote_filesystem_uploads_the_staging_dir():
    final = f"memory://deepflash-test-{uuid.uuid4().hex}/out"
    with atomic.atomic_dir(final) as out:
        assert out.local != out.uri
        with open(out.local_path("report.html"), "w") as f:
            f.write("<html></html>")
        fs.write_bytes(out.join("model", "metadata"), b"{}")
    assert fs.read_bytes(fs.join(final, "report.html")) == b"<html></html>"
    assert fs.read_bytes(fs.join(final, "model", "metadata")) == b"{}"


def test_the_next_fit_removes_temporary_dirs_whose_writer_is_gone_and_keeps_a_live_ones(tmp_path):
    import subprocess
    import sys

    from deepflash.io.store import STALE_TEMP_SECONDS

    store = Store(str(tmp_path))
    live = store.temp_dir("live")  # this process: alive
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True, check=True).stdout)
    dead = live.replace(f"-pid{os.getpid()}-", f"-pid{dead_pid}-").replace(".tmp-live-", ".tmp-dead-")
    old = store.join("data", ".tmp-old-pid1-00000000-0123456789ab")  # another host, long ago
    for d in (live, dead, old):
        store.write_bytes(fs.join(d, "part-0.parquet"), b"rows")
    os.utime(fs.local_path(old), (time.time() - STALE_TEMP_SECONDS - 60,) * 2)
    removed = store.sweep_temp()
    assert sorted(removed) == sorted([fs.basename(dead), fs.basename(old)])
    assert store.exists(live) and not store.exists(dead) and not store.exists(old)
