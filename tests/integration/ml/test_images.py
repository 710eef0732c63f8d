"""Image inputs end to end: digits as 8x8x1 images with augmentation, the fashion_cnn preset on a
slice of Fashion-MNIST, and the errors (before any write; before any job where no data is needed)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from deepflash import KerasEstimator, KerasModel
from deepflash.data.datasets import FASHION_MNIST_DIR, from_numpy, load_idx_numpy
from helpers import fails_cleanly

pytestmark = [pytest.mark.slow, pytest.mark.both_profiles(reason="Keras 2 and Keras 3 preprocessing layers differ")]

CONV = [{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d"}, {"type": "flatten"}, {"type": "dense", "units": 32, "activation": "relu"}]
AUGMENT = [{"type": "shift", "factor": 0.1}, {"type": "rotate", "factor": 0.03}, {"type": "cutout", "size": 3}]


@pytest.fixture(scope="module")
def small_digits(digits):
    train, test = digits
    return train.limit(300).cache(), test.limit(100).cache()


@pytest.fixture(scope="module")
def fitted(small_digits, tmp_path_factory):
    est = KerasEstimator(backend="local", layers=CONV, inputShape=[8, 8, 1], augmentation=AUGMENT,
                         kernelInitializer="he_uniform", epochs=2, batchSize=32, seed=1,
                         storePath=str(tmp_path_factory.mktemp("store")))
    return est.fit(small_digits[0])


def _scores(model, df):
    rows = model.transform(df).select("features", "prediction", "probability").collect()
    x = np.array([r.features.toArray() for r in rows], dtype=np.float32)
    return x, np.array([r.prediction for r in rows]), np.array([r.probability.toArray() for r in rows])


def test_image_model_trains_and_scores_flat_vectors_without_augmenting(fitted, small_digits):
    keras_model = fitted.getKerasModel()
    assert keras_model.input_shape == (None, 64)
    assert [layer.name for layer in keras_model.layers[:3]] == ["features", "image", "augmentation"]
    assert fitted.getInputShape() == [8, 8, 1] and fitted.getAugmentation()[2] == {"type": "cutout", "size": 3}
    assert len(fitted.getHistory()["loss"]) == 2
    x, pred, prob = _scores(fitted, small_digits[1])
    _, pred_again, prob_again = _scores(fitted, small_digits[1])
    np.testing.assert_array_equal(prob, prob_again)          # transform never augments: deterministic
    np.testing.assert_allclose(prob, keras_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pred, prob.argmax(axis=1))


def test_saved_image_model_scores_identically(fitted, small_digits, tmp_path):
    path = str(tmp_path / "model")
    fitted.save(path)
    loaded = KerasModel.load(path)
    assert loaded.getInputShape() == [8, 8, 1] and loaded.getAugmentation() == fitted.getAugmentation()
    _, pred, prob = _scores(fitted, small_digits[1])
    _, pred_loaded, prob_loaded = _scores(loaded, small_digits[1])
    np.testing.assert_array_equal(prob, prob_loaded)
    np.testing.assert_array_equal(pred, pred_loaded)


def test_fashion_cnn_trains_one_epoch_on_a_slice_of_fashion_mnist(spark, tmp_path):
    if not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}")
    x, y = load_idx_numpy(FASHION_MNIST_DIR, "test")
    train = from_numpy(spark, x[:300], y[:300])
    est = KerasEstimator(backend="local", layers="fashion_cnn", inputShape=[28, 28, 1],
                         augmentation=[{"type": "shift", "factor": 0.1}, {"type": "flip"}], epochs=1, batchSize=64,
                         validationSplit=0.2, seed=0, storePath=str(tmp_path))
    model = est.fit(train)
    history = model.getHistory()
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0]) and "val_accuracy" in history
    assert model.getKerasModel().count_params() == 422_026
    scored = model.transform(from_numpy(spark, x[300:340], y[300:340])).select("prediction").collect()
    assert len(scored) == 40 and {r.prediction for r in scored} <= set(range(10))


@pytest.mark.parametrize("kwargs, match, no_job", [
    # The feature length is known only after the one validation pass: a job, but no write.
    ({"inputShape": [28, 28, 1], "layers": CONV},
     r"`inputShape` == \[28, 28, 1\] expects feature vectors of length 784 \(its product\), found length 64", False),
    ({"augmentation": [{"type": "flip"}]}, r"`augmentation` needs an image `inputShape` \[height, width, channels\], "
                                           r"found None", True),
    ({"augmentation": [{"type": "cutout", "size": 10}], "inputShape": [8, 8, 1], "layers": CONV},
     r"`augmentation\[0\]\.size` == 10, must be <= 8", True),
    ({"layers": "fashion_cnn"}, r"`layers` == 'fashion_cnn' needs an image `inputShape`", True),
])
def test_image_errors(spark, small_digits, tmp_path, kwargs, match, no_job):
    est = KerasEstimator(backend="local", epochs=1, **kwargs)
    fails_cleanly(spark, str(tmp_path / "store"), small_digits[0], est, ValueError, match, no_job=no_job)
