"""Image inputs (inputShape), train-time augmentation, Cutout, the fashion_cnn preset and kernel
initializers: TensorFlow only, no Spark."""
from __future__ import annotations

import re

import numpy as np
import pytest

from deepflash.io.keras_files import model_from_bytes, model_to_bytes
from deepflash.networks import INITIALIZERS, build_model, check_augmentation, count_params, validate_layers
from deepflash.networks.keras_compat import optimizer_module, output_shape

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers

ALL_STEPS = [{"type": "rotate", "factor": 0.1}, {"type": "zoom", "factor": 0.2}, {"type": "shift", "factor": 0.2},
             {"type": "flip", "mode": "horizontal_and_vertical"}, {"type": "cutout", "size": 3}]
CONV = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d"}]


def images(n: int = 6, side: int = 8, seed: int = 0) -> np.ndarray:
    """Distinct, non-symmetric images with no zero pixel, flat."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, (n, side * side)).astype(np.float32)


# --- inputShape --------------------------------------------------------------------------------

def test_input_shape_reshapes_inside_the_model():
    model = build_model(CONV, 64, "multiclass", 3, input_shape=[8, 8, 1])
    assert model.input_shape == (None, 64)   # the model still takes flat vectors
    image = model.layers[1]
    assert type(image) is L.Reshape and image.name == "image"
    assert output_shape(image) == (None, 8, 8, 1)
    assert type(model.layers[2]) is L.Conv2D


def test_without_input_shape_a_conv_layer_needs_a_reshape_spec():
    with pytest.raises(ValueError, match=re.escape("`layers`[0] (conv2d) does not fit its input of shape (64,)")):
        build_model(CONV, 64, "regression")


def test_input_shape_is_the_same_as_a_reshape_spec():
    x = images()
    inside = build_model(CONV, 64, "multiclass", 3, seed=4, input_shape=[8, 8, 1])
    as_spec = build_model([{"type": "reshape", "target_shape": [8, 8, 1]}] + CONV, 64, "multiclass", 3, seed=4)
    assert count_params(inside) == count_params(as_spec)
    as_spec.set_weights(inside.get_weights())
    np.testing.assert_array_equal(inside.predict_on_batch(x), as_spec.predict_on_batch(x))


def test_saved_model_scores_flat_vectors_identically():
    x = images()
    model = build_model(CONV, 64, "multiclass", 3, seed=1, input_shape=[8, 8, 1], augmentation=ALL_STEPS)
    loaded = model_from_bytes(model_to_bytes(model))  # safe mode: Cutout must be a registered layer
    assert loaded.input_shape == (None, 64)
    assert type(loaded.get_layer("augmentation")).__name__ == "Augmentation"
    assert loaded.get_layer("augmentation").steps == ALL_STEPS
    assert [type(la).__name__ for la in loaded.get_layer("augmentation").augmenters] == \
        ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomFlip", "Cutout"]
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))


@pytest.mark.parametrize("shape, dim", [([28, 28, 1], 64), ([8, 8, 2], 64), ([65], 64)])
def test_input_shape_product_must_be_the_feature_length(shape, dim):
    size = int(np.prod(shape))
    with pytest.raises(ValueError, match=re.escape(f"`inputShape` == {shape} expects feature vectors of length "
                                                   f"{size} (its product), found length {dim}")):
        build_model(CONV, dim, "multiclass", 3, input_shape=shape)


# --- augmentation ------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ALL_STEPS, ids=[s["type"] for s in ALL_STEPS])
def test_each_step_changes_a_batch_in_training_only(step):
    x = images()
    model = build_model([], 64, "multiclass", 3, seed=2, input_shape=[8, 8, 1], augmentation=[step])
    block = model.get_layer("augmentation")
    batch = tf.constant(x.reshape(-1, 8, 8, 1))
    trained = block(batch, training=True).numpy()
    assert trained.shape == batch.shape
    assert not np.array_equal(trained, batch.numpy())
    np.testing.assert_array_equal(block(batch, training=False).numpy(), batch.numpy())
    np.testing.assert_array_equal(block(batch).numpy(), batch.numpy())  # no training flag: inference


def test_augmented_model_predicts_as_the_same_model_without_augmentation():
    x = images(16)
    plain = build_model(CONV, 64, "multiclass", 3, seed=5, input_shape=[8, 8, 1])
    augmented = build_model(CONV, 64, "multiclass", 3, seed=5, input_shape=[8, 8, 1], augmentation=ALL_STEPS)
    augmented.set_weights(plain.get_weights())  # augmentation layers have no weights
    first = augmented.predict(x, verbose=0)
    np.testing.assert_array_equal(first, augmented.predict(x, verbose=0))
    np.testing.assert_array_equal(first, plain.predict(x, verbose=0))
    np.testing.assert_array_equal(augmented.predict_on_batch(x), plain.predict_on_batch(x))
    np.testing.assert_array_equal(augmented(x).numpy(), plain(x).numpy())  # a plain call is inference too
    # ... while in training mode the same weights see other inputs
    assert not np.allclose(augmented(x, training=True).numpy(), plain(x, training=True).numpy())


def test_augmentation_needs_an_image_input_shape():
    for shape in (None, [64], [8, 8]):
        with pytest.raises(ValueError, match=re.escape(f"`augmentation` needs an image `inputShape` [height, width, "
                                                       f"channels], found {shape!r}")):
            build_model([], 64, "regression", input_shape=shape, augmentation=[{"type": "flip"}])


def test_cutout_larger_than_the_image_is_rejected():
    with pytest.raises(ValueError, match=re.escape("`augmentation[0].size` == 9, must be <= 8, the smaller side of "
                                                   "`inputShape` [8, 8, 1]")):
        build_model([], 64, "regression", input_shape=[8, 8, 1], augmentation=[{"type": "cutout", "size": 9}])


def test_check_augmentation_fills_defaults_and_copies():
    steps = [{"type": "Flip"}, {"type": "SHIFT", "factor": 1 / 8}, {"type": "cutout", "size": 4.0}]
    out = check_augmentation(steps)
    assert out == [{"type": "flip", "mode": "horizontal"}, {"type": "shift", "factor": 0.125},
                   {"type": "cutout", "size": 4}]
    assert isinstance(out[2]["size"], int)
    out[0]["mode"] = "vertical"
    assert steps[0] == {"type": "Flip"}


# --- Cutout ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, side, channels", [(3, 8, 1), (8, 28, 1), (28, 28, 3), (1, 5, 2)])
def test_cutout_zeroes_one_size_by_size_patch_in_training_only(size, side, channels):
    from deepflash.networks.image_layers import Cutout

    layer = Cutout(size, seed=3)
    x = np.random.default_rng(1).uniform(0.1, 1.0, (32, side, side, channels)).astype(np.float32)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    out = layer(x, training=True).numpy()
    zeroed = out == 0
    assert (zeroed == zeroed[..., :1]).all()              # the same patch in every channel
    for mask in zeroed[..., 0]:
        rows, cols = np.nonzero(mask)
        assert len(rows) == size * size                   # the whole patch lies inside the image
        assert rows.max() - rows.min() + 1 == size and cols.max() - cols.min() + 1 == size
    np.testing.assert_array_equal(out[~zeroed], x[~zeroed])  # everything else is untouched
    corners = {(int(np.nonzero(m)[0].min()), int(np.nonzero(m)[1].min())) for m in zeroed[..., 0]}
    assert len(corners) > 1 or size == side                # positions vary across the batch


def test_cutout_config_round_trips():
    from deepflash.networks.image_layers import Cutout

    config = Cutout(5, seed=9, name="cut").get_config()
    again = Cutout.from_config(config)
    assert (again.size, again.seed, again.name) == (5, 9, "cut")
    assert tf.keras.utils.get_registered_object("deepflash>Cutout") is Cutout


# --- fashion_cnn -------------------------------------------------------------------------------

def test_fashion_cnn_builds_on_28x28_images():
    model = build_model("fashion_cnn", 784, "multiclass", 10, input_shape=[28, 28, 1])
    assert count_params(model) == 422_026
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Reshape", "Conv2D", "BatchNormalization", "MaxPooling2D", "Conv2D", "BatchNormalization",
                     "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense"]
    assert [la.filters for la in model.layers if isinstance(la, L.Conv2D)] == [32, 64]


def test_fashion_cnn3_has_three_conv_blocks():
    model = build_model("fashion_cnn3", 784, "multiclass", 10, input_shape=[28, 28, 1])
    assert count_params(model) == 242_442
    assert [la.filters for la in model.layers if isinstance(la, L.Conv2D)] == [32, 64, 128]
    assert model.layers[-1].output.shape[-1] == 10
    with pytest.raises(ValueError, match="`layers` == 'fashion_cnn3' needs an image `inputShape`"):
        build_model("fashion_cnn3", 784, "multiclass", 10)


def test_fashion_cnn_needs_an_image_input_shape():
    for shape in (None, [784]):
        with pytest.raises(ValueError, match=re.escape(f"`layers` == 'fashion_cnn' needs an image `inputShape` "
                                                       f"[height, width, channels], found {shape!r}")):
            build_model("fashion_cnn", 784, "multiclass", 10, input_shape=shape)


# --- kernel initializers and regularization ----------------------------------------------------

@pytest.mark.parametrize("name", INITIALIZERS)
def test_network_kernel_initializer_reaches_dense_conv_and_output(name):
    model = build_model(CONV + [{"type": "flatten"}, {"type": "dense", "units": 4}], 64, "multiclass", 3,
                        input_shape=[8, 8, 1], kernel_initializer=name)
    kernels = [la for la in model.layers if isinstance(la, (L.Dense, L.Conv2D))]
    assert len(kernels) == 3
    expected = "".join(part.capitalize() for part in name.split("_"))   # he_normal -> HeNormal
    assert [type(layer.kernel_initializer).__name__ for layer in kernels] == [expected] * 3


def test_layer_initializer_overrides_the_network_one():
    specs = validate_layers([{"type": "dense", "units": 2, "kernel_initializer": "LeCun_Normal"},
                             {"type": "conv1d", "filters": 1, "kernel_size": 1}], kernel_initializer="he_normal")
    assert specs[0]["kernel_initializer"] == "lecun_normal"
    assert specs[1]["kernel_initializer"] == "he_normal"
    assert validate_layers([{"type": "dense", "units": 2}])[0]["kernel_initializer"] == "glorot_uniform"


def test_unknown_initializers_are_rejected():
    with pytest.raises(ValueError, match=re.escape("`layers`[0] (conv2d): `kernel_initializer` == 'orthogonal', must "
                                                   "be one of: " + ", ".join(INITIALIZERS))):
        validate_layers([{"type": "conv2d", "filters": 1, "kernel_size": 1, "kernel_initializer": "orthogonal"}])
    with pytest.raises(ValueError, match=re.escape("`kernelInitializer` == 'zeros', must be one of:")):
        build_model([], 4, "regression", kernel_initializer="zeros")


def test_conv_layers_carry_l1_and_l2():
    model = build_model([{"type": "conv2d", "filters": 2, "kernel_size": 3, "l1": 0.01, "l2": 0.002}], 64,
                        "regression", input_shape=[8, 8, 1])
    reg = model.layers[2].kernel_regularizer
    assert isinstance(reg, tf.keras.regularizers.L1L2)
    assert (float(reg.l1), float(reg.l2)) == (pytest.approx(0.01), pytest.approx(0.002))
    assert len(model.losses) == 1
    with pytest.raises(ValueError, match=re.escape("(conv2d): `l1` == -1, must be a number >= 0")):
        validate_layers([{"type": "conv2d", "filters": 2, "kernel_size": 3, "l1": -1}])


def test_fit_augments_and_evaluate_does_not():
    """A cutout as large as the image blanks every training input: with a zero learning rate, the
    loss fit reports is the loss on all-zero images, while evaluate sees the real ones."""
    x, y = images(32), np.arange(32) % 3
    model = build_model([{"type": "flatten"}], 64, "multiclass", 3, seed=0, input_shape=[8, 8, 1],
                        augmentation=[{"type": "cutout", "size": 8}])
    model.compile(optimizer=optimizer_module().SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    fit_loss = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"][0]
    assert fit_loss == pytest.approx(model.evaluate(np.zeros_like(x), y, verbose=0), rel=1e-5)
    assert model.evaluate(x, y, verbose=0) != pytest.approx(fit_loss, rel=1e-3)
