"""The pieces of a materialized dataset: its row groups, as the Parquet metadata lists them.

``list_pieces`` and ``shard_pieces`` fix which rows a shard holds (shard ``k`` of ``n`` takes every
``n``-th row group from ``k``, Petastorm's rule); :meth:`deepflash.data.readers.base.Reader.load`
counts the rows a reader returns against the pieces' row counts.
"""
from __future__ import annotations

from dataclasses import dataclass

from deepflash.io import fs


@dataclass(frozen=True)
class Piece:
    """One row group of one Parquet file."""

    path: str          # path on the filesystem (not a URI)
    row_group: int
    rows: int


def list_pieces(url: str) -> list[Piece]:
    """Every row group under the dataset directory ``url``, in file-name order."""
    import pyarrow.parquet as pq

    filesystem, root = fs.resolve(url)
    names = [n for n in fs.listdir(url) if n.endswith(".parquet") and not n.startswith((".", "_"))]
    pieces = []
    for name in names:
        path = f"{root.rstrip('/')}/{name}"
        with filesystem.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
        pieces.extend(Piece(path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups))
    return pieces


def shard_pieces(pieces: list[Piece], shard: int, num_shards: int) -> list[Piece]:
    """The pieces of shard ``shard`` of ``num_shards``: every ``num_shards``-th from ``shard``."""
    if num_shards <= 1:
        return list(pieces)
    return [p for i, p in enumerate(pieces) if i % num_shards == shard]
