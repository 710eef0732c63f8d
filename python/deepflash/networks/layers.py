"""A JSON-serializable layer list -> ``keras.Model``.

A layer is a dict with a ``type`` and that type's keys, e.g.
``{"type": "dense", "units": 64, "activation": "relu", "l2": 1e-4}``. The input layer comes
from the feature length and the output layer from the task, so a spec holds hidden layers only.
Everything is checked by :func:`validate_layers` before any Spark job runs.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu", "softplus", "linear")
OUTPUT_KINDS = ("multiclass", "binary", "regression")
# Keras's variance-scaling initializers: glorot (the Keras default), he (for relu) and lecun (for selu).
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal")
DEFAULT_INITIALIZER = "glorot_uniform"

_POOL_KEYS = {"pool_size": None, "strides": None, "padding": "valid"}
# Layers with a kernel: a missing kernel_initializer takes the network-wide one (kernelInitializer).
_KERNEL_KEYS = {"kernel_initializer": DEFAULT_INITIALIZER, "l1": 0.0, "l2": 0.0}
_CONV_KEYS = {"filters": None, "kernel_size": None, "strides": 1, "padding": "valid", "activation": "linear",
              **_KERNEL_KEYS}

# type -> {key: default}; a default of None means the key is required.
LAYER_TYPES: dict[str, dict[str, Any]] = {
    "dense": {"units": None, "activation": "linear", **_KERNEL_KEYS},
    "dropout": {"rate": None},
    "batchnorm": {},
    "conv1d": dict(_CONV_KEYS), "conv2d": dict(_CONV_KEYS), "conv3d": dict(_CONV_KEYS),
    "maxpool1d": dict(_POOL_KEYS, pool_size=2), "maxpool2d": dict(_POOL_KEYS, pool_size=2),
    "maxpool3d": dict(_POOL_KEYS, pool_size=2),
    "avgpool1d": dict(_POOL_KEYS, pool_size=2), "avgpool2d": dict(_POOL_KEYS, pool_size=2),
    "avgpool3d": dict(_POOL_KEYS, pool_size=2),
    "zeropadding": {"padding": 1},
    "flatten": {},
    "reshape": {"target_shape": None},
    "lstm": {"units": None, "activation": "tanh", "return_sequences": None, "dropout": 0.0},
}

# Optional keys for which None means "unset" rather than "required". An lstm's unset
# `return_sequences` is resolved from the stack by `_resolve_return_sequences`.
_OPTIONAL_NONE = {"strides", "return_sequences"}


def _where(i: int, spec: dict) -> str:
    return f"`layers`[{i}] ({spec.get('type', '?')})"


def _check_int(where: str, key: str, value: Any, low: int = 1) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values):
        raise ValueError(f"{where}: `{key}` == {value!r}, must be an integer >= {low} (or a list of them)")


def _check_rate(where: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{where}: `{key}` == {value!r}, must be in [0, 1)")


def check_initializer(value: Any, name: str = "kernelInitializer") -> str:
    """A kernel initializer name, lower-cased; raises ValueError naming ``name`` otherwise."""
    if not isinstance(value, str) or value.lower() not in INITIALIZERS:
        raise ValueError(f"`{name}` == {value!r}, must be one of: {', '.join(INITIALIZERS)}")
    return value.lower()


def validate_layers(layers: Any, kernel_initializer: str = DEFAULT_INITIALIZER) -> list[dict]:
    """Checks a layer list and returns a copy with every default filled in.

    An lstm's ``return_sequences`` defaults to true when another lstm follows it and to false
    otherwise, so ``[{"type": "lstm", "units": 8}, {"type": "lstm", "units": 4}]`` is a stack.

    Args:
        layers: the layer dicts.
        kernel_initializer: what a dense or conv layer without its own ``kernel_initializer`` gets.

    Raises:
        ValueError: naming the layer index, the key, what was expected and what was found.
    """
    if not isinstance(layers, (list, tuple)):
        raise ValueError(f"`layers` must be a list of layer dicts, found {type(layers).__name__}")
    out = []
    for i, spec in enumerate(layers):
        if not isinstance(spec, dict):
            raise ValueError(f"`layers`[{i}] must be a dict, found {type(spec).__name__}")
        kind = str(spec.get("type", "")).lower()
        where = _where(i, spec)
        if kind not in LAYER_TYPES:
            raise ValueError(f"`layers`[{i}]: unknown layer type {spec.get('type')!r}, must be one of: "
                             f"{', '.join(LAYER_TYPES)}")
        allowed = LAYER_TYPES[kind]
        unknown = sorted(set(spec) - set(allowed) - {"type"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}, valid keys are: {', '.join(allowed) or '(none)'}")
        full = {"type": kind}
        for key, default in allowed.items():
            if key in spec:
                full[key] = copy.deepcopy(spec[key])
            elif key == "kernel_initializer":
                full[key] = kernel_initializer
            elif default is None and key not in _OPTIONAL_NONE:
                raise ValueError(f"{where}: missing required key `{key}`")
            else:
                full[key] = default
        for key in ("units", "filters", "kernel_size", "pool_size", "target_shape"):
            if key in full:
                _check_int(where, key, full[key])
        if full.get("strides") is not None:
            _check_int(where, "strides", full["strides"])
        if kind == "zeropadding":
            _check_int(where, "padding", full["padding"], low=0)
        elif "padding" in full and full["padding"] not in ("valid", "same"):
            raise ValueError(f"{where}: `padding` == {full['padding']!r}, must be one of: valid, same")
        if "activation" in full:
            act = full["activation"]
            if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
                raise ValueError(f"{where}: unknown activation {act!r}, must be one of: {', '.join(ACTIVATIONS)}")
            full["activation"] = act.lower()
        if "kernel_initializer" in full:
            try:
                full["kernel_initializer"] = check_initializer(full["kernel_initializer"], "kernel_initializer")
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        if kind == "dropout":
            _check_rate(where, "rate", full["rate"])
        if kind == "lstm":
            _check_rate(where, "dropout", full["dropout"])
            if full["return_sequences"] is not None and not isinstance(full["return_sequences"], bool):
                raise ValueError(f"{where}: `return_sequences` == {full['return_sequences']!r}, must be true or false")
        for key in ("l1", "l2"):
            if key in full and (isinstance(full[key], bool) or not isinstance(full[key], (int, float))
                                or full[key] < 0):
                raise ValueError(f"{where}: `{key}` == {full[key]!r}, must be a number >= 0")
        out.append(full)
    return _resolve_return_sequences(out)


def _resolve_return_sequences(specs: list[dict]) -> list[dict]:
    """An lstm without ``return_sequences`` returns sequences when another lstm follows it, so a
    stack of lstm layers needs no flags; the last one returns its final state. A value the user
    gave is kept."""
    later_lstm = False
    for spec in reversed(specs):
        if spec["type"] != "lstm":
            continue
        if spec["return_sequences"] is None:
            spec["return_sequences"] = later_lstm
        later_lstm = True
    return specs


def _keras_layer(spec: dict, rank: int, seed: int | None) -> Any:
    """One Keras layer for a validated spec; ``rank`` is the rank of its input without the batch axis."""
    import tensorflow as tf

    L = tf.keras.layers
    kind = spec["type"]
    reg = tf.keras.regularizers.L1L2(l1=spec["l1"], l2=spec["l2"]) if spec.get("l1") or spec.get("l2") else None
    if kind == "dense":
        return L.Dense(spec["units"], activation=spec["activation"], kernel_initializer=spec["kernel_initializer"],
                       kernel_regularizer=reg)
    if kind == "dropout":
        return L.Dropout(spec["rate"], seed=seed)
    if kind == "batchnorm":
        return L.BatchNormalization()
    if kind.startswith("conv"):
        cls = {"conv1d": L.Conv1D, "conv2d": L.Conv2D, "conv3d": L.Conv3D}[kind]
        return cls(spec["filters"], spec["kernel_size"], strides=spec["strides"], padding=spec["padding"],
                   activation=spec["activation"], kernel_initializer=spec["kernel_initializer"],
                   kernel_regularizer=reg)
    if kind.startswith(("maxpool", "avgpool")):
        table: dict[str, Callable] = {
            "maxpool1d": L.MaxPooling1D, "maxpool2d": L.MaxPooling2D, "maxpool3d": L.MaxPooling3D,
            "avgpool1d": L.AveragePooling1D, "avgpool2d": L.AveragePooling2D, "avgpool3d": L.AveragePooling3D}
        return table[kind](pool_size=spec["pool_size"], strides=spec["strides"], padding=spec["padding"])
    if kind == "zeropadding":
        # The padding layer's dimensionality follows its input: (steps, ch) -> 1D, (h, w, ch) -> 2D ...
        cls = {2: L.ZeroPadding1D, 3: L.ZeroPadding2D, 4: L.ZeroPadding3D}.get(rank)
        if cls is None:
            raise ValueError(f"zeropadding needs an input of rank 2 to 4 (without batch), found rank {rank}; "
                             "add a reshape layer before it")
        return cls(spec["padding"])
    if kind == "flatten":
        return L.Flatten()
    if kind == "reshape":
        return L.Reshape(tuple(spec["target_shape"]))
    if kind == "lstm":
        return L.LSTM(spec["units"], activation=spec["activation"], return_sequences=spec["return_sequences"],
                      dropout=spec["dropout"])
    raise AssertionError(kind)  # validate_layers admits only the types above


def check_input_shape(input_shape: list[int] | None, input_dim: int) -> None:
    """``inputShape`` must hold exactly the feature vector's values."""
    if input_shape is None:
        return
    size = math.prod(input_shape)
    if size != input_dim:
        raise ValueError(f"`inputShape` == {list(input_shape)} expects feature vectors of length {size} (its "
                         f"product), found length {input_dim}")


def build_model(layers: list[dict] | str, input_dim: int, output: str, num_classes: int = 0,
                seed: int | None = None, name: str = "deepflash_mlp", *, input_shape: list[int] | None = None,
                augmentation: list[dict] | None = None, kernel_initializer: str = DEFAULT_INITIALIZER):
    """Builds an uncompiled ``keras.Model`` from a layer list, adding the output layer.

    The model always takes the flat feature vector. With ``input_shape`` its first layer (named
    ``image``) reshapes it, so a saved model scores flat vectors; with ``augmentation`` a
    ``keras.Sequential`` named ``augmentation`` follows, active only in training.

    Args:
        layers: hidden layers (see :data:`LAYER_TYPES`); a preset name is resolved first.
        input_dim: length of the feature vector.
        output: ``multiclass`` (softmax over ``num_classes``), ``binary`` (one sigmoid unit) or
            ``regression`` (one linear unit).
        num_classes: number of classes for ``multiclass``.
        seed: seeds the initializers, dropout and augmentation, for repeatable runs.
        input_shape: e.g. ``[28, 28, 1]``; its product must be ``input_dim``.
        augmentation: train-time steps (see :mod:`deepflash.networks.augmentation`); needs an
            ``input_shape`` of rank 3.
        kernel_initializer: of every dense and conv layer without its own, and of the output layer.

    Example:
        >>> build_model([{"type": "dense", "units": 100, "activation": "sigmoid"}], 784, "multiclass", 10)
        >>> build_model("fashion_cnn", 784, "multiclass", 10, input_shape=[28, 28, 1],
        ...             augmentation=[{"type": "shift", "factor": 0.1}], kernel_initializer="he_uniform")
    """
    import tensorflow as tf

    from deepflash.networks.augmentation import augmentation_block, check_against_shape, check_augmentation
    from deepflash.networks.presets import check_preset_input, resolve_layers

    if output not in OUTPUT_KINDS:
        raise ValueError(f"output == {output!r}, must be one of: {', '.join(OUTPUT_KINDS)}")
    if output == "multiclass" and num_classes < 2:
        raise ValueError(f"a multiclass output needs num_classes >= 2, found {num_classes}")
    kernel_initializer = check_initializer(kernel_initializer)
    check_preset_input(layers, input_shape)
    specs = validate_layers(resolve_layers(layers), kernel_initializer)
    steps = check_augmentation(augmentation or [])
    check_against_shape(steps, input_shape)
    check_input_shape(input_shape, input_dim)
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(shape=(input_dim,), name="features")
    x = inputs
    if input_shape is not None:
        x = tf.keras.layers.Reshape(tuple(input_shape), name="image")(x)
    if steps:
        x = augmentation_block(steps, seed)(x)
    for i, spec in enumerate(specs):
        try:
            x = _keras_layer(spec, len(x.shape) - 1, seed)(x)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{_where(i, spec)} does not fit its input of shape {tuple(x.shape[1:])}: "
                             f"{str(e).splitlines()[0]}") from None
    if len(x.shape) > 2:
        x = tf.keras.layers.Flatten(name="output_flatten")(x)
    units, activation = {"multiclass": (num_classes, "softmax"), "binary": (1, "sigmoid"),
                         "regression": (1, "linear")}[output]
    outputs = tf.keras.layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer,
                                    name="output")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def count_params(model) -> int:
    """Number of parameters (trainable and not) of a built model."""
    return int(model.count_params())
