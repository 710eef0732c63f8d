"""IDX reading (datasets.py) on small files written here; no Spark."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from deepflash.data.datasets import load_fashion_mnist, load_idx_numpy, read_idx

TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
              np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    code = TYPE_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes()


def write_idx(path, array: np.ndarray) -> str:
    data = idx_bytes(array)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return str(path)


RNG = np.random.default_rng(1)
IMAGES = RNG.integers(0, 256, size=(6, 3, 4), dtype=np.uint8)
IMAGES[0, 0, 0], IMAGES[0, 0, 1] = 0, 255
LABELS = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_images_and_labels(tmp_path, suffix):
    images = read_idx(write_idx(tmp_path / f"img{suffix}", IMAGES))
    labels = read_idx(write_idx(tmp_path / f"lbl{suffix}", LABELS))
    assert images.shape == (6, 3, 4) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)


def test_gz_file_is_really_compressed(tmp_path):
    path = write_idx(tmp_path / "img.gz", IMAGES)
    assert open(path, "rb").read(2) == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), IMAGES)


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">f4", ">f8", "int8"])
def test_read_idx_big_endian_types(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    out = read_idx(write_idx(tmp_path / "x", array))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_bad_magic_number(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="is not an IDX file \\(bad magic number"):
        read_idx(str(path))


def test_too_short_file(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(str(path))


def test_unknown_type_code(tmp_path):
    path = tmp_path / "weird"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX data type 0x07"):
        read_idx(str(path))


def test_header_size_mismatch(tmp_path):
    path = tmp_path / "trunc"
    path.write_bytes(idx_bytes(LABELS)[:-2])
    with pytest.raises(ValueError, match=r"header says shape \(6,\), found 4 values"):
        read_idx(str(path))


def _idx_dir(tmp_path, prefix="train", gz=(True, False)):
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{'.gz' if gz[0] else ''}", IMAGES)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{'.gz' if gz[1] else ''}", LABELS)
    return str(tmp_path)


def test_load_idx_numpy_scales_and_flattens(tmp_path):
    x, y = load_idx_numpy(_idx_dir(tmp_path))
    assert x.shape == (6, 12) and x.dtype == np.float32
    assert y.shape == (6,) and y.dtype == np.float64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, IMAGES.reshape(6, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, LABELS)


def test_load_idx_numpy_test_split_uses_t10k(tmp_path):
    _idx_dir(tmp_path, prefix="t10k", gz=(False, True))
    x, y = load_idx_numpy(str(tmp_path), "test")
    assert x.shape == (6, 12)
    np.testing.assert_array_equal(y, LABELS)
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte.gz"):
        load_idx_numpy(str(tmp_path), "train")


def test_load_idx_numpy_prefers_gz(tmp_path):
    _idx_dir(tmp_path, gz=(True, True))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(6, np.uint8))
    _, y = load_idx_numpy(str(tmp_path))
    np.testing.assert_array_equal(y, LABELS)


def test_load_idx_numpy_missing_labels(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", IMAGES)
    with pytest.raises(FileNotFoundError, match="no train-labels-idx1-ubyte.gz \\(or train-labels-idx1-ubyte\\)"):
        load_idx_numpy(str(tmp_path))


def test_load_idx_numpy_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split == 'validation', must be one of: train, test"):
        load_idx_numpy(str(tmp_path), "validation")


def test_load_fashion_mnist_missing_directory_names_the_package(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="`dataset-fashion-mnist`") as info:
        load_fashion_mnist(None, directory=missing)
    assert missing in str(info.value)

