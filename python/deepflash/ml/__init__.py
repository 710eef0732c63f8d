"""The Spark ML stages and what they share. Driver side: nothing here runs in a training process.

Modules:
    estimator    ``KerasEstimator``: validates, materializes the data, trains on a backend.
    model        ``KerasModel``: the fitted network; ``transform`` scores on the executors.
    params       the Keras stages' Params, declared once in ``KERAS_PARAMS``.
    param_table  ``ParamSpec`` and what turns a table of them into Params, defaults, signatures.
    converters   the Param converters (errors that name the Param) and ``add_accessors``.
    persistence  one writer and reader for stages with state beyond Params (``BinaryState``).
    fit_info     ``FitInfo`` and ``FitData``: what a fit did.
    timeseries   ``LookBackWindow`` and ``window_arrays``: a series as supervised rows.
"""
