"""Named architectures from the studies deepflash reproduces."""
from __future__ import annotations

import copy
from typing import Any

PRESETS: dict[str, list[dict]] = {
    # The published optimizer study's "simple" network: 784 -> 100 sigmoid -> softmax (79,510 params).
    "simple": [{"type": "dense", "units": 100, "activation": "sigmoid"}],
    # Its "deep" network: 512/256/128/64 relu (575,050 params on 784 inputs and 10 classes).
    "deep": [{"type": "dense", "units": u, "activation": "relu"} for u in (512, 256, 128, 64)],
    # The tuned MLP: batch-normalised relu layers with decreasing dropout.
    "tuned_mlp": [layer for units, rate in ((256, 0.4), (128, 0.3), (64, 0.2))
                  for layer in ({"type": "dense", "units": units, "activation": "relu"},
                                {"type": "batchnorm"}, {"type": "dropout", "rate": rate})],
}


def resolve_layers(layers: Any) -> Any:
    """A preset name becomes a copy of its layer list; anything else is returned unchanged."""
    if isinstance(layers, str):
        name = layers.lower()
        if name not in PRESETS:
            raise ValueError(f"`layers` == {layers!r}: unknown preset, must be one of: {', '.join(PRESETS)} "
                             "or a list of layer dicts")
        return copy.deepcopy(PRESETS[name])
    return layers
