"""Architecture search without and with training (issue 11): MAE random sampling, and the
evolutionary search built on it.

Example:
    >>> from deepflash.evolution import mae_random_sampling
    >>> from deepflash.timeseries import window_arrays
    >>> x, y = window_arrays(np.sin(2 * np.pi * np.arange(1000) / 100), look_back=2)
    >>> mae_random_sampling(x, y, [2, 2]).to_dict()["architecture"]
    [1, 2, 2, 1]
"""
from __future__ import annotations

from deepflash.evolution.sampling import (DEFAULT_THRESHOLD_FRACTION, SamplingResult, mae_random_sampling,
                                          mean_predictor_mae, sample_architectures)

__all__ = ["DEFAULT_THRESHOLD_FRACTION", "SamplingResult", "mae_random_sampling", "mean_predictor_mae",
           "sample_architectures"]
