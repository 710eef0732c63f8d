"""Writes the validated DataFrame once to Parquet in the store, keyed by its fingerprint.

Layout of one materialized dataset::

    <store>/data/<fingerprint>/
        train/   Parquet, columns features array<float>, label float (and weight float when the
                 fit has a ``weightCol``); >= 1 row group per shard
        val/     Parquet, same columns (may hold no rows)
        meta.json
        _DEEPFLASH_SUCCESS

Before the directory is committed the written files are checked against the validation summary
(:func:`deepflash.data.verify.verify_written`): the same row counts, and no null, NaN or infinite
value, so that a nondeterministic input cannot train on rows that were never validated. A failed
check deletes the temporary directory and raises.

A second fit on the same data and columns finds the directory complete and reuses it. The
fingerprint covers the weights (:func:`deepflash.data.schema.summarize`), so a weighted fit never
reuses unweighted data, nor the other way round.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepflash.data.readers.pieces import list_pieces
from deepflash.data.schema import FEATURES, IS_VALIDATION, LABEL, WEIGHT, DataSummary
from deepflash.data.verify import SourceColumns, WrittenDataError, verify_written
from deepflash.io import fs
from deepflash.io.store import Store

log = logging.getLogger("deepflash")

# Row groups are the unit Petastorm shards by; files of about this size keep reads sequential
# while leaving enough pieces for every process.
TARGET_FILE_BYTES = 32 * 1024 * 1024
MIN_FILES = 8


@dataclass(frozen=True)
class MaterializedData:
    """Where a materialized dataset lives and what it holds.

    Args:
        seconds: the whole materialization (the write, its check, the commit); 0 when reused.
        bytes: the Parquet files written, as the store's filesystem measures them; 0 when reused.
        verify_seconds: the check of the written files.
        write_seconds: the Parquet write alone, the time ``bytes`` took.
    """

    train_url: str
    val_url: str
    train_rows: int
    val_rows: int
    num_files: int
    reused: bool
    seconds: float = 0.0
    bytes: int = 0
    verify_seconds: float = 0.0
    write_seconds: float = 0.0


def num_train_files(rows: int, input_dim: int, num_proc: int, weighted: bool = False) -> int:
    approx_bytes = rows * (input_dim + 1 + int(weighted)) * 4
    return max(MIN_FILES, num_proc, math.ceil(approx_bytes / TARGET_FILE_BYTES))


def manifest(dataset_dir: str) -> dict[str, int]:
    """``{"train/part-....parquet": bytes, ...}``: every data file of a materialized dataset."""
    out = {}
    for split in ("train", "val"):
        split_dir = fs.join(dataset_dir, split)
        for name in fs.listdir(split_dir):
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                out[f"{split}/{name}"] = fs.size(fs.join(split_dir, name))
    return out


def check_reused(final: str, summary: DataSummary) -> dict:
    """The ``meta.json`` of the committed dataset ``final``, checked before it is reused: it was
    written for ``summary`` (the same validated rows), its files are those of its manifest with their
    sizes, and their Parquet metadata hold the row counts it records (nothing lost, torn or added).

    Raises:
        WrittenDataError: it differs, naming the directory to delete.
    """
    train_rows, val_rows = summary.rows - summary.val_rows, summary.val_rows
    try:
        meta = Store.read_json(fs.join(final, "meta.json"))
        found = {split: sum(p.rows for p in list_pieces(fs.join(final, split))) for split in ("train", "val")}
        files = manifest(final)
    except (OSError, ValueError) as e:
        raise WrittenDataError(f"the materialized data {final} cannot be read ({type(e).__name__}: {e}); delete "
                               "that directory and fit again") from e
    if "files" in meta and files != meta["files"]:
        changed = sorted(set(files) ^ set(meta["files"]) | {n for n in files if files[n] != meta["files"].get(n)})
        raise WrittenDataError(f"the materialized data {final} is not what deepflash wrote: its files differ from its "
                               f"manifest (meta.json) in {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''};"
                               " delete that directory and fit again")
    expected = {"train": train_rows, "val": val_rows}
    recorded = {"train": meta.get("train_rows"), "val": meta.get("val_rows")}
    if found != expected or recorded != expected or meta.get("fingerprint") != summary.fingerprint:
        raise WrittenDataError(
            f"the materialized data {final} does not hold what its name says: its files have {found['train']} "
            f"training and {found['val']} validation rows and it records {recorded['train']} and {recorded['val']}, "
            f"but the input validated now has {train_rows} and {val_rows}; delete that directory and fit again")
    return meta


def materialize(prepared: DataFrame, summary: DataSummary, store: Store, num_proc: int,
                columns: SourceColumns | None = None) -> MaterializedData:
    """Returns the materialized dataset for ``summary.fingerprint``, writing it if needed.

    Raises :class:`~deepflash.data.verify.WrittenDataError` (nothing committed) when what was
    written differs from ``summary``; ``columns`` names the user's columns in that message.
    """
    train_rows_est = summary.rows
    files = num_train_files(train_rows_est, summary.input_dim, num_proc, summary.weighted)
    key = f"{summary.fingerprint}-p{files}"
    final = store.dataset_dir(key)
    if store.is_complete(final):
        meta = check_reused(final, summary)
        log.info("reusing materialized data %s (%d train / %d val rows)", final, meta["train_rows"], meta["val_rows"])
        return MaterializedData(store.url("data", key, "train"), store.url("data", key, "val"),
                                meta["train_rows"], meta["val_rows"], files, reused=True)

    started = time.time()
    store.sweep_temp()
    tmp = store.temp_dir(key)
    weight = [F.col(WEIGHT).cast("float").alias(WEIGHT)] if summary.weighted else []
    data = prepared.select(F.col(FEATURES), F.col(LABEL).cast("float").alias(LABEL), *weight, F.col(IS_VALIDATION))
    try:
        # One job, one pass over the input: each task writes its rows of both splits, then the
        # two partition directories are renamed to train/ and val/ (an empty split gets an empty dir).
        write_started = time.time()
        data.repartition(files).write.partitionBy(IS_VALIDATION).parquet(fs.join(tmp, "split"))
        verify_started = time.time()
        write_seconds = verify_started - write_started
        verify_written(fs.join(tmp, "split"), spark=prepared.sparkSession, train_rows=summary.rows - summary.val_rows,
                       val_rows=summary.val_rows, num_classes=summary.num_classes, columns=columns or SourceColumns())
        verify_seconds = time.time() - verify_started
        for value, name in (("false", "train"), ("true", "val")):
            written = fs.join(tmp, "split", f"{IS_VALIDATION}={value}")
            if fs.exists(written):
                fs.rename(written, fs.join(tmp, name))
            else:
                fs.makedirs(fs.join(tmp, name))
        fs.remove(fs.join(tmp, "split"))
        meta = {"train_rows": summary.rows - summary.val_rows, "val_rows": summary.val_rows,
                "num_files": files, "files": manifest(tmp), **summary.to_json()}
        store.write_json(fs.join(tmp, "meta.json"), meta)
        store.commit_dir(tmp, final)  # a concurrent fit that committed the same data first wins
    except BaseException:
        store.remove(tmp)
        raise
    seconds = time.time() - started
    # The manifest's sizes are the Parquet files as the store's filesystem has them after the write.
    nbytes = sum(meta["files"].values())
    rows = meta["train_rows"] + meta["val_rows"]
    log.info("materialized %d train / %d val rows to %s in %.1fs (wrote %s MB of Parquet in %.2fs: %.0f rows/s, "
             "%s MB/s; checked in %.2fs)", meta["train_rows"], meta["val_rows"], final, seconds, _megabytes(nbytes),
             write_seconds, rows / max(write_seconds, 1e-9), _megabytes(nbytes / max(write_seconds, 1e-9)),
             verify_seconds)
    return MaterializedData(store.url("data", key, "train"), store.url("data", key, "val"),
                            meta["train_rows"], meta["val_rows"], files, reused=False, seconds=seconds, bytes=nbytes,
                            verify_seconds=verify_seconds, write_seconds=write_seconds)


def _megabytes(nbytes: float) -> str:
    """``nbytes`` in MB to three significant digits (``0.0412``, ``3.07``, ``512``), whole from 1000 on:
    a small dataset's figures are not rounded to 0.0."""
    mb = nbytes / 1e6
    return f"{mb:.0f}" if mb >= 1000 else f"{mb:.3g}"
