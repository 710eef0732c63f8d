"""Layer specs, presets, optimizers and losses (deepflash.networks); TensorFlow only, no Spark.

Over 400 lines: one case per layer type, preset, optimizer and loss, which share the fixtures and
helpers at the top; the image layers and the cascade networks have files of their own.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from deepflash.networks import (
    ACTIVATIONS,
    LAYER_TYPES,
    LOSSES,
    OPTIMIZERS,
    PRESETS,
    build_model,
    check_loss,
    check_optimizer,
    count_params,
    make_optimizer,
    resolve_layers,
    resolve_loss,
    validate_layers,
)
from deepflash.networks.keras_compat import optimizer_module, output_shape, to_float

tf = pytest.importorskip("tensorflow")
L = tf.keras.layers


def hidden(model, n: int) -> list:
    """The first ``n`` Keras layers after the input, i.e. one per spec."""
    return model.layers[1:1 + n]


# --- presets -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def preset_models():
    return {name: build_model(name, 784, "multiclass", 10) for name in ("simple", "deep", "tuned_mlp")}


def test_simple_preset_has_published_parameter_count(preset_models):
    model = preset_models["simple"]
    assert count_params(model) == 79_510
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    assert [d.units for d in dense] == [100, 10]
    assert dense[0].activation is tf.keras.activations.sigmoid


def test_deep_preset_has_published_parameter_count(preset_models):
    model = preset_models["deep"]
    assert count_params(model) == 575_050
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    assert [d.units for d in dense] == [512, 256, 128, 64, 10]
    assert all(d.activation is tf.keras.activations.relu for d in dense[:-1])


def test_tuned_mlp_has_batchnorm_and_decreasing_dropout(preset_models):
    model = preset_models["tuned_mlp"]
    norms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, L.Dropout)]
    assert len(norms) == 3
    assert [d.rate for d in drops] == pytest.approx([0.4, 0.3, 0.2])
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Dense", "BatchNormalization", "Dropout"] * 3 + ["Dense"]


def test_preset_names_are_case_insensitive_and_copied():
    layers = resolve_layers("SIMPLE")
    assert layers == PRESETS["simple"]
    layers[0]["units"] = 7
    assert PRESETS["simple"][0]["units"] == 100  # the preset itself is not mutated


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="unknown preset") as info:
        resolve_layers("huge")
    for name in PRESETS:
        assert name in str(info.value)


def test_non_string_layers_pass_through_resolve():
    spec = [{"type": "flatten"}]
    assert resolve_layers(spec) is spec


# --- output layer ------------------------------------------------------------------------------

@pytest.mark.parametrize("output, classes, units, activation", [
    ("multiclass", 7, 7, "softmax"),
    ("binary", 0, 1, "sigmoid"),
    ("regression", 0, 1, "linear"),
])
def test_output_layer_follows_task(output, classes, units, activation):
    model = build_model([{"type": "dense", "units": 4}], 6, output, classes)
    out = model.layers[-1]
    assert out.name == "output"
    assert out.units == units
    assert out.activation is getattr(tf.keras.activations, activation)
    assert output_shape(model) == (None, units)
    assert model.input_shape == (None, 6)


def test_bad_output_kind_and_class_count():
    with pytest.raises(ValueError, match="output == 'clustering', must be one of: multiclass, binary, regression"):
        build_model([], 4, "clustering")
    with pytest.raises(ValueError, match="num_classes >= 2, found 1"):
        build_model([], 4, "multiclass", 1)


def test_empty_layer_list_is_logistic_regression():
    model = build_model([], 5, "multiclass", 3)
    assert count_params(model) == 5 * 3 + 3


# --- every layer type builds -------------------------------------------------------------------

def _r(*shape):
    return {"type": "reshape", "target_shape": list(shape)}


# (specs, input_dim, [(Keras class, output shape without batch) for each spec])
LAYER_CASES = {
    "dropout": ([{"type": "dropout", "rate": 0.25}], 48, [(L.Dropout, (48,))]),
    "batchnorm": ([{"type": "batchnorm"}], 48, [(L.BatchNormalization, (48,))]),
    "conv1d": ([_r(12, 4), {"type": "conv1d", "filters": 3, "kernel_size": 3}], 48,
               [(L.Reshape, (12, 4)), (L.Conv1D, (10, 3))]),
    "conv2d": ([_r(4, 4, 3), {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"}], 48,
               [(L.Reshape, (4, 4, 3)), (L.Conv2D, (4, 4, 2))]),
    "conv2d_strided": ([_r(4, 4, 3), {"type": "conv2d", "filters": 5, "kernel_size": [2, 2], "strides": 2}], 48,
                       [(L.Reshape, (4, 4, 3)), (L.Conv2D, (2, 2, 5))]),
    "conv3d": ([_r(4, 4, 3, 1), {"type": "conv3d", "filters": 2, "kernel_size": 2, "activation": "relu"}], 48,
               [(L.Reshape, (4, 4, 3, 1)), (L.Conv3D, (3, 3, 2, 2))]),
    "maxpool1d": ([_r(12, 4), {"type": "maxpool1d"}], 48, [(L.Reshape, (12, 4)), (L.MaxPooling1D, (6, 4))]),
    "avgpool1d": ([_r(12, 4), {"type": "avgpool1d", "pool_size": 3}], 48,
                  [(L.Reshape, (12, 4)), (L.AveragePooling1D, (4, 4))]),
    "maxpool2d": ([_r(4, 4, 3), {"type": "maxpool2d"}], 48, [(L.Reshape, (4, 4, 3)), (L.MaxPooling2D, (2, 2, 3))]),
    "avgpool2d": ([_r(4, 4, 3), {"type": "avgpool2d", "strides": 1}], 48,
                  [(L.Reshape, (4, 4, 3)), (L.AveragePooling2D, (3, 3, 3))]),
    "maxpool3d": ([_r(4, 4, 3, 1), {"type": "maxpool3d"}], 48,
                  [(L.Reshape, (4, 4, 3, 1)), (L.MaxPooling3D, (2, 2, 1, 1))]),
    "avgpool3d": ([_r(4, 4, 3, 1), {"type": "avgpool3d", "padding": "same"}], 48,
                  [(L.Reshape, (4, 4, 3, 1)), (L.AveragePooling3D, (2, 2, 2, 1))]),
    "zeropadding1d": ([_r(12, 4), {"type": "zeropadding"}], 48,
                      [(L.Reshape, (12, 4)), (L.ZeroPadding1D, (14, 4))]),
    "zeropadding2d": ([_r(4, 4, 3), {"type": "zeropadding", "padding": 2}], 48,
                      [(L.Reshape, (4, 4, 3)), (L.ZeroPadding2D, (8, 8, 3))]),
    "zeropadding3d": ([_r(4, 4, 3, 1), {"type": "zeropadding"}], 48,
                      [(L.Reshape, (4, 4, 3, 1)), (L.ZeroPadding3D, (6, 6, 5, 1))]),
    "flatten": ([_r(12, 4), {"type": "flatten"}], 48, [(L.Reshape, (12, 4)), (L.Flatten, (48,))]),
    "lstm": ([_r(12, 4), {"type": "lstm", "units": 5}], 48, [(L.Reshape, (12, 4)), (L.LSTM, (5,))]),
    "lstm_sequences": ([_r(12, 4), {"type": "lstm", "units": 5, "return_sequences": True, "dropout": 0.1}], 48,
                       [(L.Reshape, (12, 4)), (L.LSTM, (12, 5))]),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_type_builds_with_expected_shape(case):
    specs, input_dim, expected = LAYER_CASES[case]
    model = build_model(specs, input_dim, "regression")
    layers = hidden(model, len(specs))
    for layer, (cls, shape) in zip(layers, expected, strict=True):
        assert type(layer) is cls
        assert tuple(output_shape(layer)[1:]) == shape
    # a rank > 1 output is flattened before the output layer
    last_rank = len(expected[-1][1])
    assert type(model.layers[-2]) is (L.Flatten if last_rank > 1 else cls)
    assert output_shape(model) == (None, 1)


def test_every_layer_type_is_covered_by_a_build_case():
    covered = {spec["type"] for specs, _, _ in LAYER_CASES.values() for spec in specs} | {"dense"}
    assert covered == set(LAYER_TYPES)


def test_dense_regularizer_carries_l1_and_l2():
    model = build_model([{"type": "dense", "units": 8, "activation": "tanh", "l1": 0.01, "l2": 0.002},
                         {"type": "dense", "units": 4}], 6, "regression")
    reg_dense, plain_dense = hidden(model, 2)
    reg = reg_dense.kernel_regularizer
    assert isinstance(reg, tf.keras.regularizers.L1L2)
    assert float(reg.l1) == pytest.approx(0.01)
    assert float(reg.l2) == pytest.approx(0.002)
    assert reg_dense.activation is tf.keras.activations.tanh
    assert plain_dense.kernel_regularizer is None
    assert plain_dense.activation is tf.keras.activations.linear
    assert len(model.losses) == 1  # the regularization term enters the loss


def test_only_l2_still_builds_a_regularizer():
    model = build_model([{"type": "dense", "units": 3, "l2": 1e-4}], 4, "binary")
    reg = hidden(model, 1)[0].kernel_regularizer
    assert float(reg.l1) == 0.0 and float(reg.l2) == pytest.approx(1e-4)


def test_dropout_layer_gets_the_seed():
    model = build_model([{"type": "dropout", "rate": 0.5}], 4, "regression", seed=11)
    assert hidden(model, 1)[0].seed == 11


# --- validate_layers ---------------------------------------------------------------------------

def test_validate_fills_defaults_and_normalises():
    out = validate_layers([{"type": "Dense", "units": 3, "activation": "ReLU"}, {"type": "maxpool2d"}])
    assert out[0] == {"type": "dense", "units": 3, "activation": "relu", "kernel_initializer": "glorot_uniform",
                      "l1": 0.0, "l2": 0.0}
    assert out[1] == {"type": "maxpool2d", "pool_size": 2, "strides": None, "padding": "valid"}


def test_validate_returns_a_copy():
    spec = [{"type": "reshape", "target_shape": [2, 2]}]
    out = validate_layers(spec)
    out[0]["target_shape"].append(9)
    assert spec[0]["target_shape"] == [2, 2]


def test_unknown_layer_type_lists_valid_types():
    with pytest.raises(ValueError, match=re.escape("`layers`[1]: unknown layer type 'dense2', must be one of:")) as e:
        validate_layers([{"type": "flatten"}, {"type": "dense2"}])
    for name in LAYER_TYPES:
        assert name in str(e.value)


def test_missing_type_is_unknown():
    with pytest.raises(ValueError, match="unknown layer type None"):
        validate_layers([{"units": 3}])


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match=re.escape("`layers`[0] (dense): unknown key(s) ['unit']")) as e:
        validate_layers([{"type": "dense", "units": 3, "unit": 4}])
    assert "valid keys are: units, activation" in str(e.value)


def test_missing_required_key_is_named():
    with pytest.raises(ValueError, match=re.escape("`layers`[0] (dense): missing required key `units`")):
        validate_layers([{"type": "dense"}])
    with pytest.raises(ValueError, match="missing required key `rate`"):
        validate_layers([{"type": "dropout"}])
    with pytest.raises(ValueError, match="missing required key `filters`"):
        validate_layers([{"type": "conv2d", "kernel_size": 3}])


def test_unknown_activation_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'gelu', must be one of: " + ", ".join(ACTIVATIONS)):
        validate_layers([{"type": "dense", "units": 3, "activation": "gelu"}])


@pytest.mark.parametrize("rate", [1.0, -0.1, 1, True, "0.5"])
def test_dropout_rate_outside_unit_interval_rejected(rate):
    with pytest.raises(ValueError, match=re.escape(f"(dropout): `rate` == {rate!r}, must be in [0, 1)")):
        validate_layers([{"type": "dropout", "rate": rate}])


def test_dropout_rate_zero_accepted():
    assert validate_layers([{"type": "dropout", "rate": 0}])[0]["rate"] == 0


def test_lstm_dropout_checked():
    with pytest.raises(ValueError, match=re.escape("`dropout` == 1.5, must be in [0, 1)")):
        validate_layers([{"type": "lstm", "units": 2, "dropout": 1.5}])


def _lstm_layers(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, L.LSTM)]


def test_stacked_lstms_return_sequences_except_the_last():
    stack = [{"type": "lstm", "units": 4}, {"type": "lstm", "units": 3}, {"type": "lstm", "units": 2}]
    model = build_model(stack, 12, "regression", input_shape=[6, 2])
    lstms = _lstm_layers(model)
    assert [layer.return_sequences for layer in lstms] == [True, True, False]
    assert [tuple(layer.output.shape[1:]) for layer in lstms] == [(6, 4), (6, 3), (2,)]
    assert [s["return_sequences"] for s in validate_layers(stack)] == [True, True, False]


def test_lstm_followed_by_dense_only_returns_its_final_state():
    specs = validate_layers([{"type": "lstm", "units": 4}, {"type": "dense", "units": 3}])
    assert specs[0]["return_sequences"] is False


def test_explicit_return_sequences_is_kept():
    specs = validate_layers([{"type": "lstm", "units": 4, "return_sequences": False}, {"type": "lstm", "units": 3},
                             {"type": "lstm", "units": 2, "return_sequences": True}])
    assert [s["return_sequences"] for s in specs] == [False, True, True]
    # Told not to return sequences, the first lstm hands the next a rank-1 input, which Keras refuses.
    with pytest.raises(ValueError, match=r"`layers`\[1\] \(lstm\) does not fit its input of shape \(4,\)"):
        build_model(specs[:2], 12, "regression", input_shape=[6, 2])
    last = _lstm_layers(build_model(specs[2:], 12, "regression", input_shape=[6, 2]))[0]
    assert last.return_sequences is True and tuple(last.output.shape[1:]) == (6, 2)


def test_validated_lstm_stack_validates_to_itself():
    specs = validate_layers([{"type": "lstm", "units": 4}, {"type": "lstm", "units": 3}])
    assert validate_layers(specs) == specs


def test_return_sequences_must_be_a_bool():
    with pytest.raises(ValueError, match=r"`layers`\[0\] \(lstm\): `return_sequences` == 'yes', must be true"):
        validate_layers([{"type": "lstm", "units": 2, "return_sequences": "yes"}])


@pytest.mark.parametrize("spec, key", [
    ({"type": "dense", "units": 0}, "units"),
    ({"type": "dense", "units": 2.0}, "units"),
    ({"type": "dense", "units": True}, "units"),
    ({"type": "conv1d", "filters": 2, "kernel_size": [3, 0]}, "kernel_size"),
    ({"type": "maxpool1d", "strides": 0}, "strides"),
    ({"type": "reshape", "target_shape": []}, "target_shape"),
])
def test_non_positive_integers_rejected(spec, key):
    with pytest.raises(ValueError, match=re.escape(f"`{key}` == {spec[key]!r}, must be an integer >= 1")):
        validate_layers([spec])


def test_zeropadding_accepts_zero_but_not_negative():
    assert validate_layers([{"type": "zeropadding", "padding": 0}])[0]["padding"] == 0
    with pytest.raises(ValueError, match="`padding` == -1, must be an integer >= 0"):
        validate_layers([{"type": "zeropadding", "padding": -1}])


def test_conv_padding_must_be_valid_or_same():
    with pytest.raises(ValueError, match="`padding` == 'full', must be one of: valid, same"):
        validate_layers([{"type": "conv1d", "filters": 1, "kernel_size": 1, "padding": "full"}])


@pytest.mark.parametrize("value", [-0.1, "0.1", False])
def test_negative_regularization_rejected(value):
    with pytest.raises(ValueError, match=re.escape(f"`l2` == {value!r}, must be a number >= 0")):
        validate_layers([{"type": "dense", "units": 1, "l2": value}])


def test_non_list_and_non_dict_layers_rejected():
    with pytest.raises(ValueError, match="must be a list of layer dicts, found dict"):
        validate_layers({"type": "dense"})
    with pytest.raises(ValueError, match=re.escape("`layers`[0] must be a dict, found str")):
        validate_layers(["dense"])


def test_conv2d_on_flat_input_names_the_layer_index():
    specs = [{"type": "dense", "units": 6}, {"type": "conv2d", "filters": 2, "kernel_size": 3}]
    with pytest.raises(ValueError, match=re.escape("`layers`[1] (conv2d) does not fit its input of shape (6,)")):
        build_model(specs, 8, "regression")


def test_zeropadding_on_flat_input_asks_for_a_reshape():
    with pytest.raises(ValueError, match=re.escape("`layers`[0] (zeropadding) does not fit")) as e:
        build_model([{"type": "zeropadding"}], 8, "regression")
    assert "add a reshape layer" in str(e.value)


def test_pool_of_wrong_rank_names_the_layer_index():
    with pytest.raises(ValueError, match=re.escape("`layers`[1] (maxpool1d) does not fit its input of shape "
                                                   "(2, 2, 2)")):
        build_model([_r(2, 2, 2), {"type": "maxpool1d"}], 8, "regression")


def test_validation_happens_before_keras_builds_anything():
    with pytest.raises(ValueError, match=re.escape("`layers`[2] (dense): missing required key `units`")):
        build_model([{"type": "dense", "units": 2}, {"type": "flatten"}, {"type": "dense"}], 4, "regression")


# --- seeds -------------------------------------------------------------------------------------

def _weights(seed):
    model = build_model([{"type": "dense", "units": 16, "activation": "relu"}], 12, "multiclass", 3, seed=seed)
    return model.get_weights()


def test_same_seed_gives_identical_initial_weights():
    a, b = _weights(5), _weights(5)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_different_seeds_give_different_initial_weights():
    a, b = _weights(5), _weights(6)
    assert not np.array_equal(a[0], b[0])  # first kernel
    assert not np.array_equal(a[2], b[2])  # output kernel


# --- optimizers --------------------------------------------------------------------------------

OPTIMIZER_CLASSES = {"sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta", "rmsprop": "RMSprop",
                     "adam": "Adam", "adamax": "Adamax", "nadam": "Nadam"}


def test_optimizer_table_covers_every_name():
    assert set(OPTIMIZER_CLASSES) == set(OPTIMIZERS)
    assert len(OPTIMIZERS) == 7


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CLASSES))
def test_make_optimizer_gives_the_keras_class_with_learning_rate(name):
    opt = make_optimizer(name.upper(), 0.0375)
    assert type(opt) is getattr(optimizer_module(), OPTIMIZER_CLASSES[name])
    assert opt.get_config()["learning_rate"] == pytest.approx(0.0375)
    assert to_float(opt.learning_rate) == pytest.approx(0.0375)


def test_sgd_carries_momentum_and_nesterov():
    config = make_optimizer("sgd", 0.1, momentum=0.9, nesterov=True).get_config()
    assert config["momentum"] == pytest.approx(0.9)
    assert config["nesterov"] is True
    config = make_optimizer("sgd", 0.1).get_config()
    assert config["momentum"] == 0.0 and config["nesterov"] is False


def test_rmsprop_carries_momentum():
    assert make_optimizer("rmsprop", 0.1, momentum=0.5).get_config()["momentum"] == pytest.approx(0.5)


def test_make_optimizer_returns_fresh_instances():
    assert make_optimizer("adam", 0.1) is not make_optimizer("adam", 0.1)


def test_unknown_optimizer_lists_valid_ones():
    with pytest.raises(ValueError, match="`optimizer` == 'lbfgs', must be one of: " + ", ".join(OPTIMIZERS)):
        make_optimizer("lbfgs", 0.1)
    with pytest.raises(ValueError, match="`optimizer` == None"):
        check_optimizer(None)
    assert check_optimizer("AdaMax") == "adamax"


@pytest.mark.parametrize("lr", [0, -0.5])
def test_non_positive_learning_rate_rejected(lr):
    with pytest.raises(ValueError, match=re.escape(f"`learningRate` == {lr!r}, must be > 0")):
        make_optimizer("adam", lr)


# --- losses ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, output, expected", [
    ("auto", "multiclass", ("sparse_categorical_crossentropy", "sparse")),
    ("auto", "binary", ("binary_crossentropy", "raw")),
    ("auto", "regression", ("mse", "raw")),
    ("mse", "multiclass", ("mse", "onehot")),
    ("mae", "multiclass", ("mae", "onehot")),
    ("categorical_crossentropy", "multiclass", ("categorical_crossentropy", "onehot")),
    ("sparse_categorical_crossentropy", "multiclass", ("sparse_categorical_crossentropy", "sparse")),
    ("binary_crossentropy", "binary", ("binary_crossentropy", "raw")),
    ("mse", "regression", ("mse", "raw")),
    ("mae", "regression", ("mae", "raw")),
    ("mse", "binary", ("mse", "raw")),
    ("MEAN_SQUARED_ERROR", "regression", ("mse", "raw")),
    ("mean_absolute_error", "multiclass", ("mae", "onehot")),
    ("cce", "multiclass", ("categorical_crossentropy", "onehot")),
    ("bce", "binary", ("binary_crossentropy", "raw")),
])
def test_resolve_loss_table(loss, output, expected):
    assert resolve_loss(loss, output) == expected


@pytest.mark.parametrize("output, valid", [
    ("regression", "auto, mae, mse"),
    ("binary", "auto, binary_crossentropy, mae, mse"),
])
def test_categorical_crossentropy_rejected_outside_multiclass(output, valid):
    message = f"`loss` == 'categorical_crossentropy' does not fit a {output} output; valid losses for it: {valid}"
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_loss("categorical_crossentropy", output)


@pytest.mark.parametrize("loss", ["binary_crossentropy", "sparse_categorical_crossentropy"])
def test_crossentropy_rejected_for_regression(loss):
    with pytest.raises(ValueError, match="does not fit a regression output"):
        resolve_loss(loss, "regression")


def test_unknown_loss_lists_all():
    with pytest.raises(ValueError, match=re.escape("`loss` == 'hinge', must be one of: " + ", ".join(LOSSES))):
        resolve_loss("hinge", "multiclass")
    with pytest.raises(ValueError, match="`loss` == 3, must be one of"):
        check_loss(3)
