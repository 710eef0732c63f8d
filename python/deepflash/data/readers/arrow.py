"""An Arrow-native reader: materialized Parquet to numpy with ``pyarrow.parquet`` alone.

No Petastorm: it works on any pyarrow (the modern stack's too). A dataset is split into pieces,
one per row group, in file-name order; shard ``k`` of ``n`` takes every ``n``-th piece from
``k`` (the rule Petastorm uses, so both readers give a process the same rows). The array column
becomes a ``(rows, dim)`` float32 view of its flat values (``ListArray.flatten``), with no
per-row Python. A ``weight`` column, where the data has one, is read with the same row group.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from deepflash.data.readers.base import WEIGHT, Reader, Shard, register
from deepflash.data.readers.pieces import Piece, list_pieces, shard_pieces
from deepflash.io import fs

__all__ = ["ArrowReader", "Piece", "list_pieces", "shard_pieces", "table_to_arrays"]

FEATURES, LABEL = "features", "label"


def table_to_arrays(table) -> tuple[np.ndarray, np.ndarray]:
    """(features (rows, dim) float32, labels (rows,) float32) from an Arrow table, no per-row Python."""
    import pyarrow as pa

    rows = table.num_rows
    labels = table.column(LABEL).to_numpy().astype(np.float32, copy=False)
    column = table.column(FEATURES)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not chunks or rows == 0:
        return np.zeros((0, 0), np.float32), labels
    parts = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        values = chunk.flatten()  # respects offsets: the values of exactly these rows
        if values.null_count:
            raise ValueError(f"column {FEATURES!r} holds null values; the materialized data is damaged")
        flat = values.to_numpy(zero_copy_only=False)
        parts.append(flat.reshape(len(chunk), -1))
    features = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return features.astype(np.float32, copy=False), labels


@register("arrow")
class ArrowReader(Reader):
    """Reads row groups with ``pyarrow.parquet``; ``iter_batches`` streams one row group at a time."""

    ordered = True

    def iter_batches(self, url: str, shard: int = 0, num_shards: int = 1,
                     seed: int | None = None) -> Iterator[Shard]:
        """Yields one :class:`~deepflash.data.readers.base.Shard` per row group of this shard (with
        ``weights`` when the files have a weight column): in piece order, or in an order drawn
        from ``seed``."""
        import pyarrow.parquet as pq

        filesystem, _ = fs.resolve(url)
        pieces = shard_pieces(list_pieces(url), shard, num_shards)
        if seed is not None:
            pieces = [pieces[i] for i in np.random.default_rng(seed).permutation(len(pieces))]
        current, handle = None, None
        try:
            for piece in pieces:
                if piece.path != current:
                    if handle is not None:
                        handle.close()
                    current, handle = piece.path, filesystem.open_input_file(piece.path)
                    parquet = pq.ParquetFile(handle)
                    weighted = WEIGHT in parquet.schema_arrow.names
                columns = [FEATURES, LABEL, WEIGHT] if weighted else [FEATURES, LABEL]
                table = parquet.read_row_group(piece.row_group, columns=columns)
                if table.num_rows:
                    weights = table.column(WEIGHT).to_numpy().astype(np.float32, copy=False) if weighted else None
                    yield Shard(*table_to_arrays(table), weights)
        finally:
            if handle is not None:
                handle.close()
