"""A network's scores: batched calls on the network and its outputs as ``prediction`` and, for
classification, class probabilities.

``KerasModel.transform`` (on the executors) and the pyfunc model of :mod:`deepflash.serving.pyfunc`
(outside Spark) both score through these functions, so their outputs cannot drift apart.
NumPy and Keras only, no Spark. Worker-safe.
"""
from __future__ import annotations

import numpy as np

from deepflash.networks.keras_compat import output_shape

# Activations of one predict call stay under this many bytes (see predict_batch_rows).
PREDICT_MEMORY_BYTES = 8 << 20


def feature_matrix(features, input_dim: int, features_col: str) -> np.ndarray:
    """A batch of feature arrays (a pandas Series, one array per row) as one ``(rows, input_dim)``
    float32 matrix, by one C concatenation: what the scoring UDFs of KerasModel and RANModel feed
    their networks.

    Raises:
        ValueError: a row is null or not ``input_dim`` long; the message names ``features_col``
            and the lengths found.
    """
    n = len(features)
    if n == 0:
        return np.zeros((0, input_dim), np.float32)
    try:
        flat = np.concatenate(features.to_numpy())
    except (TypeError, ValueError):  # a null row
        flat = None
    if flat is None or flat.size != n * input_dim:
        lengths = sorted({-1 if v is None else len(v) for v in features.to_numpy()} - {input_dim})
        raise ValueError(f"`featuresCol` column {features_col!r} must hold vectors of length {input_dim} "
                         f"(the length the model was fitted on), found rows of length {lengths} (-1: null)")
    return flat.astype(np.float32, copy=False).reshape(n, input_dim)


def predict_batch_rows(model, budget_bytes: int = PREDICT_MEMORY_BYTES) -> int:
    """Rows per ``predict_on_batch`` call: as many as fit ``budget_bytes`` of float32 activations.

    Each row costs its input plus every layer's output (a dense net on 784 pixels: about 5 KB), so
    small nets get large batches (few calls, little per-call overhead) and wide ones stay bounded.
    The budget is small on purpose: activations that stay in the CPU cache beat one huge call
    (2,048-row calls ran Fashion-MNIST's MLP about 1.5x faster than 10,000-row ones).
    """
    floats = 0
    for layer in model.layers:
        shape = output_shape(layer)
        shapes = shape if isinstance(shape, list) else [shape]
        for shape in shapes:
            floats += int(np.prod([d for d in shape[1:] if d is not None] or [1]))
    floats += int(np.prod([d for d in model.input_shape[1:] if d is not None] or [1]))
    return int(min(16384, max(256, budget_bytes // (4 * max(floats, 1)))))


def network_outputs(model, x: np.ndarray, rows_per_call: int) -> np.ndarray:
    """The network's outputs for the ``(rows, input_dim)`` float32 matrix ``x``, as float64.

    One ``predict_on_batch`` call per ``rows_per_call`` rows (see :func:`predict_batch_rows`):
    ``model.predict`` would build a dataset and a progress bar on every call, which costs more
    than scoring a small batch.

    Example:
        >>> out = network_outputs(net, x, predict_batch_rows(net))
    """
    if not len(x):
        return np.zeros((0, int(output_shape(model)[-1])))
    return np.concatenate([np.asarray(model.predict_on_batch(x[i:i + rows_per_call]), np.float64)
                           for i in range(0, len(x), rows_per_call)])


def score_outputs(out: np.ndarray, output_kind: str, num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(prediction, probability)`` from the network's outputs ``out`` (rows, outputs).

    multiclass: the arg-max class and the first ``num_classes`` outputs (all of them when
    ``num_classes`` is 0, not recorded); binary: ``p1 >= 0.5`` and ``[1 - p1, p1]`` from the
    sigmoid output; regression: the first output and no probabilities. Predictions are float64,
    as Spark ML's ``prediction`` column.

    Args:
        out: network outputs, one row per scored row.
        output_kind: ``multiclass``, ``binary`` or ``regression`` (``KerasModel.getOutputKind()``).
        num_classes: the classes of a multiclass model (0: the network's output width); ignored
            otherwise.

    Example:
        >>> prediction, probability = score_outputs(network_outputs(net, x, 1024), "multiclass", 10)
    """
    if output_kind == "multiclass":
        return out.argmax(axis=1).astype(np.float64), out[:, :num_classes] if num_classes > 0 else out
    if output_kind == "binary":
        p1 = out[:, 0]
        return (p1 >= 0.5).astype(np.float64), np.stack([1.0 - p1, p1], axis=1)
    return out[:, 0], None
