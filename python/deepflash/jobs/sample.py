"""``deepflash sample``: MAE random sampling of one architecture in a Spark task, no
training; writes ``sampling.json`` with the published listing's fields (``look_back``,
``architecture``, ``metrics`` with ``log_p``, ``p``, ``mean``, ``samples``, ``std``).

Example:
    deepflash sample --config conf/sine_mae_sampling.json --output /tmp/sampling
"""
from __future__ import annotations

import logging
import os

from deepflash.jobs.base import Job
from deepflash.jobs.config import ConfigError
from deepflash.jobs.outputs import open_output, write_json
from deepflash.jobs.sources import load_series

log = logging.getLogger("deepflash")


def run(config: dict, output: str, overwrite: bool = False) -> dict:
    """Samples ``sampling.architecture`` at ``sampling.look_back`` on the ``data`` series and writes
    ``sampling.json`` atomically; returns its content.

    Args:
        config: a validated config with a ``sampling`` section (``architecture`` required) and a
            series ``data`` source (``sine``).
        output: the output directory.
        overwrite: replace an existing output.
    """
    from deepflash.evolution.sampling import sample_architectures

    settings = dict(config.get("sampling") or {})
    if "architecture" not in settings:
        raise ConfigError("sampling.architecture: required, units per layer from input to output, e.g. [1, 2, 2, 1]")
    architecture = settings.pop("architecture")
    look_back = settings.pop("look_back", 1)
    try:
        series = load_series(config.get("data") or {})  # before Spark starts
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if look_back >= len(series):
        raise ConfigError(f"sampling.look_back: {look_back} leaves no window in a series of {len(series)} steps")
    spark, output, staging = open_output(config, output, overwrite)
    with staging as out:
        (result,) = sample_architectures(spark, series, [(look_back, architecture[1:-1])], **settings)
        listing = result.to_dict()
        write_json(os.path.join(out.local, "sampling.json"), listing)
    log.info("sampled %s at look-back %d: log_p %.4f, p %.4g, MAE mean %.4f, std %.4f (%d draws, %.1fs); wrote %s",
             listing["architecture"], look_back, result.log_p, result.p, result.mean, result.std, result.samples,
             result.seconds, output)
    return listing


JOB = Job("sample", "MAE random sampling of one architecture, without training",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
