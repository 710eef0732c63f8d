"""The ``tf.data`` pipeline over a reader's shards, on a worker.

``to_dataset`` batches an in-memory shard (read mode ``memory``); ``stream_dataset`` streams
one from the store through a bounded :class:`ShuffleBuffer` (read mode ``stream``);
``encode_targets`` turns labels into what the loss takes. Either stream is a deterministic function
of the rows, the seed and the position, so a resumed run continues where the interrupted one stopped.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import numpy as np

from deepflash.data.readers import Reader, Shard

log = logging.getLogger("deepflash")
# Reads of a streaming pass that comes up short before letting any batch out (Petastorm has been
# seen to return no rows at all for a pass, now and then).
PASS_ATTEMPTS = 5


def to_dataset(shard: Shard, *, batch_size: int, target_encoding: str, num_classes: int,
               shuffle: bool, seed, repeat: bool, start_batch: int = 0, canonical_order: bool | None = None):
    """A batched ``tf.data.Dataset`` of (features, target), or of (features, target, weight) when the
    shard has weights (Keras takes the third element as ``sample_weight``), from an in-memory shard.

    The batches are a deterministic function of the shard's rows, ``seed`` and their position, so a
    resumed run can continue the stream where the interrupted one stopped:

    - pass ``p`` over the rows (``p`` = 0, 1, ... with ``repeat``, only 0 without) visits them in a
      permutation drawn from ``(seed, p)`` when ``shuffle``, in order otherwise. Batches run across
      pass boundaries, so every batch of a repeated stream is full;
    - ``start_batch`` starts the stream at that batch without producing the ones before it: a run
      resumed after ``k`` epochs of ``s`` steps passes ``k * s`` and sees the batches the
      uninterrupted run saw from there;
    - ``canonical_order`` (default: ``shuffle``) first sorts the rows by their contents, so the
      order a reader happened to return them in (Petastorm reads row groups on several threads)
      does not change the stream.

    Args:
        seed: an int or a sequence of ints, e.g. ``(seed, rank)`` for one stream per process;
            None with ``shuffle`` draws a random one.
    """
    import tensorflow as tf

    if start_batch < 0:
        raise ValueError(f"start_batch == {start_batch}, must be >= 0")
    y = encode_targets(shard.labels, target_encoding, num_classes)
    n = len(shard.labels)
    weighted = shard.weights is not None
    if n == 0:
        empty = (shard.features, y, shard.weights) if weighted else (shard.features, y)
        return tf.data.Dataset.from_tensor_slices(empty).batch(batch_size)
    if canonical_order is None:
        canonical_order = shuffle
    features = tf.convert_to_tensor(shard.features)
    targets = tf.convert_to_tensor(y)
    weights = tf.convert_to_tensor(shard.weights) if weighted else None
    order = tf.constant(_content_order(shard), tf.int64) if canonical_order else None
    key = tf.constant(_stream_key(seed), tf.int64)
    first_pass, offset = divmod(start_batch * batch_size, n)

    def rows_of_pass(p):
        rows = tf.range(n, dtype=tf.int64)
        if shuffle:
            rows = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([key, p]))
        if order is not None:
            rows = tf.gather(order, rows)
        start = tf.where(tf.equal(p, first_pass), tf.constant(offset, tf.int64), tf.constant(0, tf.int64))
        return tf.data.Dataset.from_tensor_slices(rows[start:])

    passes = tf.data.Dataset.counter(first_pass) if repeat else tf.data.Dataset.range(first_pass, 1)
    ds = passes.flat_map(rows_of_pass).batch(batch_size)
    if repeat:
        ds = ds.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    if weighted:
        def gather(rows):
            return tf.gather(features, rows), tf.gather(targets, rows), tf.gather(weights, rows)
    else:
        def gather(rows):
            return tf.gather(features, rows), tf.gather(targets, rows)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _stream_key(seed) -> int:
    """One 63-bit key from an int, a sequence of ints or None (random)."""
    if seed is None:
        entropy = None
    elif isinstance(seed, (int, np.integer)):
        entropy = [int(seed)]
    else:
        entropy = [int(s) for s in seed]
    if entropy is not None and any(e < 0 for e in entropy):
        entropy = [e % (2 ** 64) for e in entropy]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _content_order(shard: Shard) -> np.ndarray:
    """Row indices that sort the shard by content: feature bytes, then label, then weight. Rows that
    tie are identical, so their relative order cannot matter."""
    n = len(shard.labels)
    feats = np.ascontiguousarray(shard.features, dtype=np.float32).reshape(n, -1)
    weights = np.zeros(n, np.float32) if shard.weights is None else np.asarray(shard.weights)
    if feats.shape[1] == 0:
        return np.lexsort((weights, shard.labels))
    rows = feats.view(np.dtype((np.void, feats.shape[1] * feats.itemsize))).ravel()
    by_features = np.argsort(rows, kind="stable")
    # rows with equal features: order them by label too
    sorted_rows = rows[by_features]
    group = np.concatenate([[0], np.cumsum(sorted_rows[1:] != sorted_rows[:-1])])
    labels = np.asarray(shard.labels)[by_features]
    return by_features[np.lexsort((weights[by_features], labels, group))]


class ShuffleBuffer:
    """A bounded pool of rows that mixes a stream: rows come in by the row group, leave in random
    order, a batch at a time, once more than ``capacity`` are held, and the rest leave at
    :meth:`drain`.

    The live rows sit packed at the front of arrays that grow to capacity plus a row group, so a
    row group of ``R`` rows costs about ``3R`` row copies (append, draw, refill the holes from the
    tail) whatever the capacity; concatenating and permuting the whole pool per row group cost
    ``2(capacity + R)``. Rows leave a batch at a time, and holes are refilled in slices of
    :attr:`SLICE_ROWS`, so no temporary is larger than a batch or a slice.
    """

    SLICE_ROWS = 4096

    def __init__(self, capacity: int, dim: int, weighted: bool, rng: np.random.Generator):
        self.capacity, self.rng, self.fill = capacity, rng, 0
        # Allocated as rows arrive: a small shard never costs the whole capacity.
        self.features = np.empty((0, dim), np.float32)
        self.labels = np.empty((0,), np.float32)
        self.weights = np.empty((0,), np.float32) if weighted else None

    def _arrays(self):
        return [a for a in (self.features, self.labels, self.weights) if a is not None]

    def _rows(self, index: np.ndarray) -> Shard:
        out = [a[index] for a in self._arrays()]
        return Shard(out[0], out[1], out[2] if self.weights is not None else None)

    def add(self, part: Shard, batch_size: int) -> Iterator[Shard]:
        """Takes ``part`` in, then yields batches of ``batch_size`` rows drawn at random from the
        pool while it holds more than ``capacity``. Take every batch before the next ``add``: the
        pool is packed again after the last one."""
        n = len(part.labels)
        if self.fill + n > len(self.labels):  # grow: the pool holds capacity plus one row group
            size = max(self.fill + n, 2 * len(self.labels))
            grown = [np.empty((size,) + a.shape[1:], a.dtype) for a in self._arrays()]
            for new, old in zip(grown, self._arrays(), strict=True):
                new[:self.fill] = old[:self.fill]
            self.features, self.labels = grown[0], grown[1]
            self.weights = grown[2] if self.weights is not None else None
        incoming = [part.features, part.labels] + ([part.weights] if self.weights is not None else [])
        for pool, rows in zip(self._arrays(), incoming, strict=True):
            pool[self.fill:self.fill + n] = rows
        self.fill += n
        take = (self.fill - self.capacity) // batch_size * batch_size
        if take <= 0:
            return
        drawn = self.rng.permutation(self.fill)[:take]
        for i in range(0, take, batch_size):
            yield self._rows(drawn[i:i + batch_size])
        # Refill the holes below the new end with the live rows above it, so the pool stays packed.
        end = self.fill - take
        holes = drawn[drawn < end]
        above = np.ones(take, bool)
        above[drawn[drawn >= end] - end] = False
        sources = end + np.flatnonzero(above)
        for i in range(0, len(holes), self.SLICE_ROWS):
            for a in self._arrays():
                a[holes[i:i + self.SLICE_ROWS]] = a[sources[i:i + self.SLICE_ROWS]]
        self.fill = end

    def drain(self, batch_size: int) -> Iterator[Shard]:
        """Yields every row still held, in random order, in batches of ``batch_size`` (the last
        may be short); the pool is empty after."""
        order = self.rng.permutation(self.fill)
        for i in range(0, len(order), batch_size):
            yield self._rows(order[i:i + batch_size])
        self.fill = 0


def stream_dataset(reader: Reader, url: str, *, shard: int, num_shards: int, batch_size: int,
                   buffer_rows: int, target_encoding: str, num_classes: int, seed, start_batch: int = 0):
    """An endless, batched ``tf.data.Dataset`` that streams a shard from the store: (features,
    target), or (features, target, weight) when the data has weights.

    Memory stays bounded whatever the data size: one row group plus a :class:`ShuffleBuffer` of
    ``buffer_rows`` rows. Pass ``p`` reads the shard's row groups in an order drawn from
    ``(seed, p)`` and mixes their rows through the buffer with a generator seeded the same way,
    so the stream is a deterministic function of the data, the seed and the position. Each pass
    yields every row once; its last batch may be short. A resumed run starts at ``start_batch``
    by reading and dropping the batches before it (streaming has no random access).

    Every pass is counted against the row counts in the shard's Parquet metadata. A short pass
    that has let no batch out yet (its rows all still in the buffer) is read again, up to
    :data:`PASS_ATTEMPTS` times, from the same seeds, so the stream does not change.

    Raises:
        ShortReadError: at the end of a short pass that has let batches out (reading it again
            would change the stream), or that stays short.
    """
    import tensorflow as tf

    key = _stream_key(seed)
    sample = next(iter(reader.iter_batches(url, shard, num_shards)), None)
    if sample is None:
        raise ValueError(f"shard {shard} of {num_shards} of {url} holds no rows")
    dim = sample.features.shape[1]
    weighted = sample.weights is not None
    y_shape = encode_targets(sample.labels[:1], target_encoding, num_classes).shape[1:]
    y_dtype = tf.int32 if target_encoding == "sparse" else tf.float32

    expected = reader.expected_rows(url, shard, num_shards)

    def one_pass(p: int) -> Iterator[Shard]:
        for attempt in range(1, PASS_ATTEMPTS + 1):
            rng = np.random.default_rng([key, p])
            order_seed = int(rng.integers(2 ** 31))
            pool = ShuffleBuffer(buffer_rows, dim, weighted, rng)
            rows = emitted = 0
            for part in reader.iter_batches(url, shard, num_shards, seed=order_seed):
                rows += len(part.labels)
                for batch in pool.add(part, batch_size):
                    emitted += 1
                    yield batch
            if rows == expected:
                yield from pool.drain(batch_size)
                return
            if emitted:  # batches of this pass are out: reading it again would change the stream
                raise reader.short_read(url, shard, num_shards, rows, f"in streaming pass {p + 1}")
            log.warning("the %s reader read %d of the %d rows of shard %d/%d of %s in streaming pass %d; "
                        "reading the pass again (attempt %d of %d)", reader.name, rows, expected, shard, num_shards,
                        url, p + 1, attempt + 1, PASS_ATTEMPTS)
        raise reader.short_read(url, shard, num_shards, rows, f"in streaming pass {p + 1}, {PASS_ATTEMPTS} times")

    def batches():
        produced = 0
        for p in itertools.count():
            for rows in one_pass(p):
                if produced >= start_batch:
                    batch = (rows.features, encode_targets(rows.labels, target_encoding, num_classes))
                    yield (batch + (rows.weights,)) if weighted else batch
                produced += 1

    signature = (tf.TensorSpec((None, dim), tf.float32), tf.TensorSpec((None, *y_shape), y_dtype))
    if weighted:
        signature += (tf.TensorSpec((None,), tf.float32),)
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return ds.prefetch(2)


def encode_targets(labels: np.ndarray, target_encoding: str, num_classes: int) -> np.ndarray:
    """``sparse``: class ids; ``onehot``: one column per class; ``raw``: float column."""
    if target_encoding == "onehot":
        out = np.zeros((len(labels), num_classes), dtype=np.float32)
        out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
        return out
    if target_encoding == "sparse":
        return labels.astype(np.int32)
    return labels.reshape(-1, 1).astype(np.float32)
