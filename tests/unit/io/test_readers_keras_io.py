"""Target encoding and tf.data batches (data/readers, data/pipeline.py) and keras_io."""
from __future__ import annotations

import numpy as np
import pytest

from deepflash.data.pipeline import encode_targets, to_dataset
from deepflash.data.readers import READERS, PetastormReader, Shard, get_reader
from deepflash.io.keras_files import cached_model, model_digest, model_from_bytes, model_to_bytes

LABELS = np.array([0.0, 2.0, 1.0, 2.0], dtype=np.float32)


# --- encode_targets ----------------------------------------------------------------------------

def test_sparse_targets_are_int_class_ids():
    y = encode_targets(LABELS, "sparse", 3)
    assert y.shape == (4,)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [0, 2, 1, 2])


def test_onehot_targets_have_one_column_per_class():
    y = encode_targets(LABELS, "onehot", 4)
    assert y.shape == (4, 4)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(4))


def test_raw_targets_are_a_float_column():
    labels = np.array([0.5, -1.25, 3.0])
    y = encode_targets(labels, "raw", 0)
    assert y.shape == (3, 1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[:, 0], labels.astype(np.float32))


def test_empty_labels_encode_to_empty_arrays():
    empty = np.zeros((0,), np.float32)
    assert encode_targets(empty, "onehot", 3).shape == (0, 3)
    assert encode_targets(empty, "sparse", 3).shape == (0,)
    assert encode_targets(empty, "raw", 0).shape == (0, 1)


# --- to_dataset --------------------------------------------------------------------------------

def _shard(rows=10, dim=4):
    x = np.arange(rows * dim, dtype=np.float32).reshape(rows, dim)
    y = (np.arange(rows) % 3).astype(np.float32)
    return Shard(x, y)


def test_to_dataset_batches_in_order():
    shard = _shard()
    ds = to_dataset(shard, batch_size=4, target_encoding="onehot", num_classes=3, shuffle=False, seed=None,
                    repeat=False)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [x.shape for x, _ in batches] == [(4, 4), (4, 4), (2, 4)]
    assert [y.shape for _, y in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), shard.features)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]).argmax(axis=1), shard.labels)


@pytest.mark.parametrize("encoding, shape", [("sparse", (5,)), ("raw", (5, 1))])
def test_to_dataset_target_shapes(encoding, shape):
    ds = to_dataset(_shard(), batch_size=5, target_encoding=encoding, num_classes=3, shuffle=False, seed=None,
                    repeat=False)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (5, 4)
    assert tuple(y.shape) == shape


def test_to_dataset_shuffle_is_seeded_and_keeps_every_row():
    def rows(seed):
        ds = to_dataset(_shard(20), batch_size=20, target_encoding="sparse", num_classes=3, shuffle=True,
                        seed=seed, repeat=False)
        return next(iter(ds))[0].numpy()

    a, b = rows(3), rows(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _shard(20).features)  # the order changed
    np.testing.assert_array_equal(a[np.argsort(a[:, 0])], _shard(20).features)  # but no row was lost


def test_to_dataset_repeat_never_ends():
    ds = to_dataset(_shard(), batch_size=4, target_encoding="sparse", num_classes=3, shuffle=False, seed=None,
                    repeat=True)
    shapes = [tuple(x.shape) for x, _ in ds.take(6)]
    assert shapes == [(4, 4)] * 6  # 24 rows out of a 10-row shard


def test_reader_registry():
    assert READERS["petastorm"] is PetastormReader
    reader = get_reader("petastorm", workers=3)
    assert isinstance(reader, PetastormReader) and reader.workers == 3
    assert READERS["arrow"].__name__ == "ArrowReader"
    with pytest.raises(ValueError, match="`reader` == 'parquet', must be one of: arrow, petastorm"):
        get_reader("parquet")


# --- keras_io ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((5,))
    x = tf.keras.layers.Dense(4, activation="relu")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def test_model_bytes_round_trip_predicts_identically(small_model):
    data = model_to_bytes(small_model)
    assert isinstance(data, bytes) and data[:2] == b"PK"  # a .keras file is a zip
    clone = model_from_bytes(data)
    assert clone is not small_model
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict_on_batch(x), small_model.predict_on_batch(x))
    for a, b in zip(clone.get_weights(), small_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_digest_and_cache(small_model):
    data = model_to_bytes(small_model)
    digest = model_digest(data)
    assert len(digest) == 16 and digest == model_digest(data)
    assert model_digest(data + b"x") != digest
    first = cached_model(data, digest)
    assert cached_model(data, digest) is first  # deserialized once
    assert cached_model(data, "other-digest") is not first


def test_lambda_model_refused_in_safe_mode():
    tf = pytest.importorskip("tensorflow")
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Lambda(lambda t: t * 2)(inputs))
    data = model_to_bytes(model)
    with pytest.raises(ValueError, match="Lambda"):
        model_from_bytes(data)


def _with_keras_version(data: bytes, version: str) -> bytes:
    """The same .keras file with another keras_version in its metadata.json."""
    import io
    import json
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(content)
                meta["keras_version"] = version
                content = json.dumps(meta).encode()
            dst.writestr(item, content)
    return out.getvalue()


def test_a_model_of_the_other_keras_major_is_refused_naming_both_versions(small_model):
    from deepflash.io.keras_files import saved_keras_version
    from deepflash.networks.keras_compat import keras_major, keras_version

    data = model_to_bytes(small_model)
    assert saved_keras_version(data) == keras_version()
    other = "3.15.1" if keras_major() == 2 else "2.15.0"
    with pytest.raises(ValueError, match=rf"saved with Keras {other}; this process runs Keras {keras_version()}, "
                                         rf"and Keras {keras_major()} cannot load a Keras {other[0]} model\. Load it "
                                         r"under the (classic|modern) profile"):
        model_from_bytes(_with_keras_version(data, other))
