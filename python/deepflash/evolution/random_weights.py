"""Networks whose weights are drawn at random, evaluated for many draws at once.

:func:`weight_shapes` lists an architecture's weights in Keras order, :func:`draw_weights` draws
them with a leading draw axis, and :func:`forward` runs every draw of a batch as one set of
``einsum``/``matmul`` calls in TensorFlow (imported when called), with the LSTM cell unrolled over
the look-back steps. :mod:`deepflash.evolution.sampling` scores architectures with it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def weight_shapes(look_back: int, k: int, hidden: Sequence[int], layer_type: str = "lstm") -> list[tuple[int, ...]]:
    """Shapes of the network's weights in Keras order (``model.get_weights()``), output unit last.

    An LSTM layer has ``kernel (inputs, 4*units)``, ``recurrent_kernel (units, 4*units)`` and
    ``bias (4*units,)`` with Keras's gate order i, f, c, o; a dense layer has ``kernel`` and
    ``bias``; dense hidden layers read the flattened window (``look_back * k`` inputs).
    """
    shapes: list[tuple[int, ...]] = []
    inputs = k if layer_type == "lstm" else look_back * k
    for units in hidden:
        if layer_type == "lstm":
            shapes += [(inputs, 4 * units), (units, 4 * units), (4 * units,)]
        else:
            shapes += [(inputs, units), (units,)]
        inputs = units
    return shapes + [(inputs, 1), (1,)]


def draw_weights(shapes: Sequence[tuple[int, ...]], draws: int, init: str, rng: np.random.Generator,
                 scale: float = 1.0) -> list[np.ndarray]:
    """``draws`` independent random weight sets, each array with a leading draw axis (float32).

    ``"normal"`` draws every weight, biases included, from N(0, 1), as DLOPT does.
    ``"glorot_uniform"`` draws each matrix from U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))``
    over its own shape (Keras's Glorot limit; the LSTM's recurrent matrix too, where Keras would
    use an orthogonal matrix) and sets biases to zero, as Keras does. Every weight is then
    multiplied by ``scale``.
    """
    weights = []
    for shape in shapes:
        if init == "normal":
            w = rng.standard_normal((draws, *shape))
        elif len(shape) == 1:
            w = np.zeros((draws, *shape))
        else:
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            w = rng.uniform(-limit, limit, (draws, *shape))
        weights.append((scale * w).astype(np.float32))
    return weights


def _activation(name: str):
    import tensorflow as tf

    return {"tanh": tf.tanh, "sigmoid": tf.sigmoid, "relu": tf.nn.relu, "linear": tf.identity}[name]


def forward(x: np.ndarray, weights: Sequence[Any], hidden: Sequence[int], layer_type: str = "lstm",
            activation: str = "tanh", output_activation: str = "linear"):
    """Predictions of a batch of draws: a ``(draws, rows)`` float32 tensor.

    Args:
        x: ``(rows, look_back, k)`` windows, shared by every draw.
        weights: arrays in :func:`weight_shapes` order, each with a leading draw axis.
        hidden: units per hidden layer.
        layer_type: ``"lstm"`` (stacked, every LSTM but the last returning its sequence, as a
            Keras ``Sequential`` stack does) or ``"dense"`` (on the flattened window).
        activation: the hidden layers' activation (for an LSTM, Keras's ``activation``; the gates
            use the sigmoid).
        output_activation: the single output unit's activation.

    Example:
        >>> from deepflash.ml.timeseries import window_arrays
        >>> x, _ = window_arrays(np.sin(np.arange(20.0)), 2)
        >>> w = draw_weights(weight_shapes(2, 1, [3]), 5, "normal", np.random.default_rng(0))
        >>> forward(x, w, [3]).shape
        TensorShape([5, 18])
    """
    import tensorflow as tf

    act, out_act = _activation(activation), _activation(output_activation)
    w = [tf.convert_to_tensor(a, tf.float32) for a in weights]
    x = tf.convert_to_tensor(x, tf.float32)
    if layer_type == "dense":
        rows = tf.shape(x)[0]
        h = act(tf.einsum("ri,dij->drj", tf.reshape(x, (rows, -1)), w[0]) + w[1][:, None, :])
        for i in range(1, len(hidden)):
            h = act(tf.matmul(h, w[2 * i]) + w[2 * i + 1][:, None, :])
        kernel, bias = w[2 * len(hidden)], w[2 * len(hidden) + 1]
    else:
        # Input projections of all steps at once: (draws, look_back, rows, 4 units).
        projected = tf.einsum("rti,dig->dtrg", x, w[0])
        for i, units in enumerate(hidden):
            recurrent, bias = w[3 * i + 1], w[3 * i + 2][:, None, :]
            h = tf.zeros_like(projected[:, 0, :, :units])
            c = h
            sequence = []
            for t in range(projected.shape[1]):
                z = projected[:, t] + tf.matmul(h, recurrent) + bias
                gate_i, gate_f, candidate, gate_o = tf.split(z, 4, axis=-1)
                c = tf.sigmoid(gate_f) * c + tf.sigmoid(gate_i) * act(candidate)
                h = tf.sigmoid(gate_o) * act(c)
                sequence.append(h)
            if i + 1 < len(hidden):
                projected = tf.einsum("dtru,dug->dtrg", tf.stack(sequence, axis=1), w[3 * (i + 1)])
        kernel, bias = w[3 * len(hidden)], w[3 * len(hidden) + 1]
    return out_act(tf.matmul(h, kernel) + bias[:, None, :])[:, :, 0]
