"""Time series as supervised rows: look-back windows and the value ``horizon`` steps ahead.

:func:`window_arrays` is the in-memory form, used where one task holds a sample of the series
(MAE random sampling, evolutionary search).
"""
from __future__ import annotations

import numpy as np


def window_arrays(values: np.ndarray, look_back: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Windows of an ordered series: ``x[i] = values[i : i + look_back]``, ``y[i] = values[i + look_back + horizon - 1]``.

    Args:
        values: shape ``(steps,)`` or ``(steps, k)``; a 1-D series is treated as ``k = 1``, and
            the first column is the target.
        look_back: window length, >= 1.
        horizon: how many steps after the window's last value the label lies, >= 1.

    Returns:
        ``x`` of shape ``(rows, look_back, k)`` and ``y`` of shape ``(rows,)``, where
        ``rows = steps - look_back - horizon + 1`` (0 when the series is too short).

    Example:
        >>> x, y = window_arrays(np.arange(5.0), look_back=2)
        >>> x[:, :, 0].tolist(), y.tolist()
        ([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]], [2.0, 3.0, 4.0])
    """
    for name, value in (("look_back", look_back), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` == {value!r}, must be an integer >= 1")
    series = np.asarray(values, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2:
        raise ValueError(f"expected values of shape (steps,) or (steps, k), found {series.shape}")
    rows = max(len(series) - look_back - horizon + 1, 0)
    idx = np.arange(rows)[:, None] + np.arange(look_back)[None, :]
    x = series[idx] if rows else np.zeros((0, look_back, series.shape[1]))
    y = series[look_back + horizon - 1: look_back + horizon - 1 + rows, 0]
    return x, y
